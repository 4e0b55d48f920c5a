"""Task processes run below the plane in CPU priority.

On AWS the control plane's Lambdas never share a CPU with the Batch jobs. Here they
do: the plane is one Python process that records every task's events, answers the
CLI and drives Step Functions, and with as many task processes as cores (or more,
`--vcpus`) an even share of the CPU left it minutes behind the run it recorded. A
niceness of 10 gives the plane the CPU first when both want it; the tasks keep
every cycle the plane does not use.
"""

from __future__ import annotations

import os

TASK_NICENESS = 10


def run_below_the_plane(pid: int) -> None:
    """Lower a just-started task process (a zygote, a warm process, a task) to TASK_NICENESS.

    Called before the process starts threads, so its threads and the processes it forks
    inherit the priority. Best effort: where priorities cannot be set, tasks just share
    the CPU evenly with the plane."""
    try:
        current = os.getpriority(os.PRIO_PROCESS, pid)
        if current < TASK_NICENESS:
            os.setpriority(os.PRIO_PROCESS, pid, TASK_NICENESS)
    except (OSError, AttributeError):  # gone already, not permitted, or no priorities here
        pass
