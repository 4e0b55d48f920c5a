"""`make bench`: every benchmark section, printing figures and ratios to goals.

Sections are small modules in this folder with a `run(ctx) -> list[Row]`;
each measures one thing the issues set a goal for. Timings are medians of
repeated runs because these shared 2-core machines are noisy.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import BenchContext  # noqa: E402

SECTIONS = [
    "bench_local_run",
    "bench_compile",
    "bench_client_api",
    "bench_recorder",
    "bench_cold_import",
    "bench_embedded",
    "bench_validation",
    "bench_s3",
    "bench_history",
    "bench_idempotency",
    "bench_triggers",
    "bench_wide_foreach",
    "bench_foreach_reads",
    "bench_environments",
    "bench_resume",
    "bench_ui",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--metaflow-python", help="a Python with metaflow installed (the reference)")
    ap.add_argument("--only", nargs="*", help="run only these sections")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    # Sections run commands in other folders: a relative interpreter path must not break there.
    mf = str(Path(args.metaflow_python).absolute()) if args.metaflow_python else None
    ctx = BenchContext(metaflow_python=mf, repeat=args.repeat)
    failed = 0
    for name in SECTIONS:
        if args.only and name not in args.only and name.removeprefix("bench_") not in args.only:
            continue
        if not (HERE / f"{name}.py").exists():
            continue
        print(f"\n== {name.removeprefix('bench_')} ==", flush=True)
        started = time.perf_counter()
        try:
            rows = importlib.import_module(name).run(ctx)
        except Exception:
            failed += 1
            traceback.print_exc()
            continue
        for row in rows:
            print(row.render(), flush=True)
        print(f"   ({time.perf_counter() - started:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
