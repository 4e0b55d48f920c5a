"""Compile a flow's Manifest into an AWS Step Functions state machine (ASL).

    from chalicelib.compiler import compile_state_machine, CompileSettings
    definition = compile_state_machine(manifest, "s3://bucket/packages/<sha>.tar.gz", settings)

Pure: no AWS calls, so the compile Lambda, `--only-json` and the tests share it.
"""

from .asl import CompileError, compile_state_machine, job_name
from .settings import CompileSettings

__all__ = ["CompileError", "CompileSettings", "compile_state_machine", "job_name"]
