"""The compiler: ASL bytes per task state, and compile time of a 1,000-step graph."""

from __future__ import annotations

import json
import time

from common import BenchContext, Row, flow_path

from chalicelib.compiler import CompileSettings, compile_state_machine
from flowplane.graph import read_source_flow

from tests.support.compiler_shapes import LONG_SETTINGS, PACKAGE_URL, linear_source, manifest_for

# The tests' long stage settings; a deployed flow also carries its production token.
SETTINGS = CompileSettings(**LONG_SETTINGS, production_token="productiontoken-1234")
METAFLOW_BYTES_PER_TASK = 6000  # FACTS.md: ~6 KB a task state in Metaflow's ASL


def task_state_sizes(definition: dict) -> list[int]:
    sizes = []

    def walk(states: dict) -> None:
        for state in states.values():
            if state.get("Type") == "Task" and "batch:submitJob" in state.get("Resource", ""):
                sizes.append(len(json.dumps(state, separators=(",", ":"))))
            for branch in state.get("Branches", []):
                walk(branch["States"])
            proc = state.get("ItemProcessor") or state.get("Iterator")
            if proc:
                walk(proc["States"])

    walk(definition["States"])
    return sizes


def run(ctx: BenchContext) -> list[Row]:
    rows = []
    for name in ("parameter_flow.py", "branch_flow.py", "foreach_flow.py"):
        path = flow_path(name)
        d = compile_state_machine(manifest_for(path.read_text(), name), PACKAGE_URL, SETTINGS)
        sizes = task_state_sizes(d)
        total = len(json.dumps(d, separators=(",", ":")))
        rows.append(Row(f"{name}: largest task state", max(sizes), "bytes", goal=1024,
                        note=f"(definition {total} B, {len(sizes)} task states)"))
    d500 = compile_state_machine(manifest_for(linear_source(500), "long.py"), PACKAGE_URL, SETTINGS)
    sizes = task_state_sizes(d500)
    total = len(json.dumps(d500, separators=(",", ":")))
    rows.append(Row("500-step flow: mean bytes per task state", total / len(sizes), "bytes", goal=1024,
                    note=f"Metaflow ~{METAFLOW_BYTES_PER_TASK} B"))
    rows.append(Row("500-step flow: whole definition", total / 1e6, "MB", goal=1.0))
    m1000 = manifest_for(linear_source(1000), "long.py")
    compile_state_machine(m1000, PACKAGE_URL, SETTINGS)  # warm
    times = []
    for _ in range(max(5, ctx.repeat)):
        t0 = time.perf_counter()
        compile_state_machine(m1000, PACKAGE_URL, SETTINGS)
        times.append(time.perf_counter() - t0)
    times.sort()
    rows.append(Row("compile a 1,000-step graph (median)", times[len(times) // 2] * 1000, "ms", goal=100))
    t0 = time.perf_counter()
    read_source_flow(linear_source(1000), "long.py")
    rows.append(Row("read a 1,000-step flow's graph from source (ast)", (time.perf_counter() - t0) * 1000, "ms"))
    return rows
