"""The `step-functions` command group with every command: deploying and runs (flowplane/sfn_cli.py),
and operating the schedule (flowplane/sfn_schedule_cli.py). The flow CLI mounts this one."""

from __future__ import annotations

from .sfn_cli import step_functions
from .sfn_schedule_cli import COMMANDS

for _command in COMMANDS:
    step_functions.add_command(_command)

__all__ = ["step_functions"]
