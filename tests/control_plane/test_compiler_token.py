"""The production token reaches every task, so runs land in production:<token>."""

from __future__ import annotations

from chalicelib.compiler import CompileSettings, compile_state_machine
from chalicelib.compiler.asl import CONTEXT_STATE
from tests.support.compiler_shapes import LONG_SETTINGS, PACKAGE_URL, shared_manifest


def _env(definition: dict) -> dict:
    ctx = definition["States"][CONTEXT_STATE]["Parameters"]
    (fp,) = ctx.values()
    return {e["Name"]: e.get("Value", e.get("Value.$")) for e in fp["env"]}


def test_the_token_is_in_every_tasks_environment():
    manifest = shared_manifest("parameter_flow.py")
    settings = CompileSettings(**LONG_SETTINGS, production_token="tok-123")
    env = _env(compile_state_machine(manifest, PACKAGE_URL, settings))
    assert env["FLOWPLANE_PRODUCTION_TOKEN"] == "tok-123"


def test_without_a_token_no_variable_is_set():
    manifest = shared_manifest("parameter_flow.py")
    env = _env(compile_state_machine(manifest, PACKAGE_URL, CompileSettings(**LONG_SETTINGS)))
    assert "FLOWPLANE_PRODUCTION_TOKEN" not in env
