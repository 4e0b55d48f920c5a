"""`run` of the foreach flow (13 tasks): flowplane against Metaflow, same file, import switched."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from common import BenchContext, Row, flow_path, median_time, run_cmd

METAFLOW_MEASURED = 3.1  # seconds, from ../shared/FACTS.md


def run(ctx: BenchContext) -> list[Row]:
    src = flow_path("foreach_flow.py")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fp_file = work / "fp" / "foreach_flow.py"
        fp_file.parent.mkdir()
        shutil.copy(src, fp_file)
        env = {"FLOWPLANE_DATASTORE_ROOT": str(work / "fp" / ".flowplane"), "USER": "bench"}
        fp = median_time(lambda: run_cmd([ctx.python, str(fp_file), "run"], fp_file.parent, env), ctx.repeat)
        # Without fork every task pays interpreter start-up and imports: what forking saves.
        sub_env = {**env, "FLOWPLANE_TASK_LAUNCHER": "subprocess"}
        sub = median_time(lambda: run_cmd([ctx.python, str(fp_file), "run"], fp_file.parent, sub_env), 1)
        mf = None
        if ctx.metaflow_python:
            mf_file = work / "mf" / "foreach_flow.py"
            mf_file.parent.mkdir()
            mf_file.write_text(src.read_text().replace("from flowplane import", "from metaflow import"))
            mf_env = {"USER": "bench", "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DEFAULT_METADATA": "local"}
            mf = median_time(
                lambda: run_cmd([ctx.metaflow_python, str(mf_file), "--quiet", "run"], mf_file.parent, mf_env),
                ctx.repeat,
            )
        reference = mf if mf is not None else METAFLOW_MEASURED
        rows.append(Row("flowplane run foreach_flow.py (13 tasks), median", fp, "s", goal=reference / 3))
        rows.append(Row("flowplane run, subprocess launcher (no fork), one run", sub, "s"))
        if mf is not None:
            rows.append(Row("metaflow run foreach_flow.py (13 tasks), median", mf, "s"))
            rows.append(Row("flowplane / metaflow wall time", fp / mf, "ratio", goal=1 / 3))
        else:
            rows.append(Row("metaflow not installed; reference from FACTS.md", METAFLOW_MEASURED, "s"))
    return rows
