"""Cold `import app` in a fresh interpreter: what every Lambda of the stack pays first.

Median of 5 runs, each its own process, with the environment every Lambda of the
stack gets from .chalice/config.json (PYDANTIC_DISABLE_PLUGINS: pydantic would
otherwise scan every installed distribution for plugins on the first model). Also what the run-record blueprints
add to it (from -X importtime), and what the recorder loads on its first event
(Powertools Logger/Metrics and the recording modules), which only the record
and reconcile Lambdas pay.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess

from common import ROOT, BenchContext, Row

GOAL_MS = 300.0
RUNS = 5
OWN_MODULES = ("chalicelib.routes.recording", "chalicelib.routes.client_api")

TIMED_IMPORT = "import time; t = time.perf_counter(); import app; print((time.perf_counter() - t) * 1000)"
FIRST_EVENT = (
    "import app, time; t = time.perf_counter(); "
    "import chalicelib.recording.service, chalicelib.recording.telemetry as tm; tm.logger(); tm._metrics_sink(); "
    "print((time.perf_counter() - t) * 1000)"
)


def _lambda_environment() -> dict[str, str]:
    """The variables config.json gives every function of every stage."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return dict(config.get("environment_variables", {}))


def _python(ctx: BenchContext, code: str, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0", **_lambda_environment()}
    return subprocess.run([ctx.python, *flags, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)


def _own_cost_ms(ctx: BenchContext) -> float:
    """What the blueprints this issue added cost on top of everything else app.py imports."""
    code = (
        "import time, chalice, chalicelib.identity, chalicelib.routes.deploy, chalicelib.routes.runs; "
        "t = time.perf_counter(); import " + ", ".join(OWN_MODULES) + "; "
        "print((time.perf_counter() - t) * 1000)"
    )
    return statistics.median(float(_python(ctx, code).stdout.strip()) for _ in range(3))


def run(ctx: BenchContext) -> list[Row]:
    _python(ctx, "import app")  # bytecode compiled once, as in a deployed bundle
    times = [float(_python(ctx, TIMED_IMPORT).stdout.strip()) for _ in range(RUNS)]
    first = [float(_python(ctx, FIRST_EVENT).stdout.strip()) for _ in range(3)]
    return [
        Row(f"cold import app, median of {RUNS} fresh processes", statistics.median(times), "ms", goal=GOAL_MS,
            note=f"min {min(times):.0f} max {max(times):.0f}"),
        Row("  of which the run-record blueprints (recording, client_api), marginal", _own_cost_ms(ctx), "ms"),
        Row("recorder's first event: its modules + Powertools Logger/Metrics", statistics.median(first), "ms"),
    ]
