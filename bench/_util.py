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
