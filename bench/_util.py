"""Helpers shared by the benchmarks."""


def peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM; getrusage's ru_maxrss would include the parent's
    peak, which a child inherits across fork and exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")
