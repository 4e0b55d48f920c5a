"""@pypi environments: what a task pays for running in one, and what building one costs.

On the embedded plane (started here, persistence off), two deployed flows of the same shape
(start -> end) are triggered one run at a time: one plain, one whose steps have @pypi
(tomli-w, a small pure-Python wheel; deployed with --environment=pypi). After the first run
has built the environment (the archive stored in the bucket), a task of the @pypi flow forks
from a zygote started in its environment: the figure is a task process's life, start to exit,
against the plain flow's (goal: at most 0.3 s more). Then, outside the plane, one environment
resolved (the lock, from the index), built in an empty folder (uv's download cache warm, as
on any machine after the first: venv, install, bytecode), archived as production stores it,
and unpacked. Needs the package index (PyPI).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import BenchContext, Row

GOAL_ADDED = 0.3  # s per task, issue 22

FLOW = '''
from flowplane import FlowSpec, pypi, step


class {name}(FlowSpec):
    {decorator}
    @step
    def start(self):
        {use}
        self.next(self.end)

    {decorator}
    @step
    def end(self):
        {use}
'''


def _write(folder: Path, name: str, with_pypi: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name.lower()}.py"
    path.write_text(FLOW.format(
        name=name,
        decorator='@pypi(packages={"tomli-w": "1.0.0"})' if with_pypi else "",
        use="import tomli_w" if with_pypi else "pass",
    ))
    return path


def run(ctx: BenchContext) -> list[Row]:
    from click.testing import CliRunner

    from flowplane.cli import build_flow_cli
    from flowplane.local.plane import LocalPlane, PlaneConfig

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        saved = {k: os.environ.get(k) for k in ("HOME", "FLOWPLANE_API_URL", "FLOWPLANE_USER", "UV_CACHE_DIR")}
        os.environ.setdefault("UV_CACHE_DIR", os.path.expanduser("~/.cache/uv"))
        os.environ.update(HOME=str(work / "home"), FLOWPLANE_USER="bench")
        plane = LocalPlane(PlaneConfig(state_dir=work / "state", persist=False)).start()
        try:
            os.environ["FLOWPLANE_API_URL"] = plane.url
            for name, with_pypi in (("PlainBenchFlow", False), ("PypiBenchFlow", True)):
                cli = build_flow_cli(_load(_write(work / "src" / name, name, with_pypi), name))
                args = ["--environment=pypi"] if with_pypi else []
                done = CliRunner().invoke(cli, [*args, "step-functions", "create"], catch_exceptions=False)
                assert done.exit_code == 0, done.output
            from flowplane.api_client import ApiClient

            client = ApiClient(plane.url)
            first, first_run = _lifetimes(plane, client, "PypiBenchFlow", 1)  # builds the environment, stores its archive
            rows.append(Row("first run of a @pypi flow (its environment built), slowest task", max(first), "s",
                            note="resolving was done at create"))
            _, zygote_run = _lifetimes(plane, client, "PypiBenchFlow", 1)
            plain, plain_runs = _lifetimes(plane, client, "PlainBenchFlow", ctx.repeat)
            cached, cached_runs = _lifetimes(plane, client, "PypiBenchFlow", ctx.repeat)
            rows.append(Row("trigger -> run finished (2 tasks), without @pypi, median", statistics.median(plain_runs), "s"))
            rows.append(Row("trigger -> run finished (2 tasks), @pypi cached, median", statistics.median(cached_runs), "s"))
            rows.append(Row("  the run after the build (the environment's zygote starts)", zygote_run[0], "s",
                            note="once per environment and plane"))
            rows.append(Row("a task without @pypi, start to exit, median", statistics.median(plain), "s"))
            rows.append(Row("a @pypi task, environment cached, start to exit, median", statistics.median(cached), "s",
                            note="forked by the environment's zygote"))
            rows.append(Row("  added per task by @pypi (cached environment)",
                            max(0.0, statistics.median(cached) - statistics.median(plain)), "s", goal=GOAL_ADDED))
        finally:
            plane.stop()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        rows += _build_figures(work)
    return rows


def _build_figures(work: Path) -> list[Row]:
    from flowplane.environments import cache
    from flowplane.environments.bucket import write_archive
    from flowplane.environments.resolve import default_python, resolve_one

    rows = []
    saved = os.environ.get(cache.ENVS_DIR_ENV)
    try:
        os.environ[cache.ENVS_DIR_ENV] = str(work / "envs-resolve")
        t0 = time.perf_counter()
        env = resolve_one(default_python(), ["tomli-w==1.0.0"])
        rows.append(Row("resolve one environment (uv pip compile, the index)", time.perf_counter() - t0, "s"))
        os.environ[cache.ENVS_DIR_ENV] = str(work / "envs-build")
        t0 = time.perf_counter()
        path, _ = cache.build(env.id, env)
        rows.append(Row("build it the first time (venv, install, bytecode)", time.perf_counter() - t0, "s",
                        note="uv's download cache warm"))
        archive = work / "env.tar.gz"
        t0 = time.perf_counter()
        with open(archive, "wb") as f:
            write_archive(path, f)
        rows.append(Row("archive it (what the first production task stores)", time.perf_counter() - t0, "s"))
        rows.append(Row("  archive size", archive.stat().st_size / 1e6, "MB",
                        note=f"{_size(path) / 1e6:.0f} MB unpacked; flowplane's own requirements are most of it"))
        os.environ[cache.ENVS_DIR_ENV] = str(work / "envs-unpack")
        t0 = time.perf_counter()
        cache.unpack(env.id, env, str(archive))
        rows.append(Row("unpack it (a later task on a new host)", time.perf_counter() - t0, "s"))
    finally:
        if saved is None:
            os.environ.pop(cache.ENVS_DIR_ENV, None)
        else:
            os.environ[cache.ENVS_DIR_ENV] = saved
    return rows


def _size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files
               if not os.path.islink(os.path.join(d, f)))


def _load(path: Path, name: str) -> type:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return getattr(module, name)


def _lifetimes(plane, client, flow: str, repeat: int) -> tuple[list[float], list[float]]:
    """Trigger `flow` `repeat` times, one run at a time: each task process's life (start to
    exit), and each run's time from the trigger to its end."""
    out, runs = [], []
    for _ in range(repeat):
        before = len(plane.batch.history)
        t0 = time.perf_counter()
        run_id = client.trigger(flow, {})["run_id"]
        plane.wait_for_runs(300)
        runs.append(time.perf_counter() - t0)
        tasks = [r for r in plane.batch.history[before:] if r.run_id == run_id]
        assert tasks and all(r.exit_code == 0 for r in tasks), f"{flow} {run_id}: {tasks}"
        out += [r.ended - r.started for r in tasks]
    return out, runs


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for row in run(BenchContext(repeat=int(os.environ.get("REPEAT", "3")))):
        print(row.render())
