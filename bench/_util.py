"""Helpers shared by the benchmarks."""


def status_mb(field: str, pid: int | str = "self") -> float:
    """A memory field of ``/proc/PID/status`` (VmHWM, VmRSS) in MB; nan when the process or the
    field is not there (a child that has just exited)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM; getrusage's ru_maxrss would include the parent's
    peak, which a child inherits across fork and exec)."""
    return status_mb("VmHWM")


def run_worker(script: str, *args: str) -> dict:
    """``python SCRIPT --worker ARGS...`` in a process of its own (its own peak memory), and the JSON
    object it prints last; its stderr's tail on failure."""
    import json
    import subprocess
    import sys

    p = subprocess.run([sys.executable, script, "--worker", *args], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{' '.join(args[:1])} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])
