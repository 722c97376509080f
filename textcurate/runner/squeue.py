"""What Slurm's queue says about a run's jobs (``squeue``): read by the output-folder lock, which
a submitted run hands to its jobs, and by the Slurm runner."""

from __future__ import annotations

import shutil
import subprocess


def queued(job_ids: list[str]) -> dict[str, str]:
    """{job id: state} for the jobs squeue still lists (pending, running, ...)."""
    ids = [j for j in job_ids if j]
    if not ids or shutil.which("squeue") is None:
        return {}
    try:
        out = subprocess.run(["squeue", "-h", "-o", "%F %T", "-j", ",".join(ids)], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states.setdefault(parts[0], parts[1])  # the array's first task's state stands for the job
    return states
