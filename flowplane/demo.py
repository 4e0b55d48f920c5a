"""`python -m flowplane.demo` (what `make demo` runs): the production path, end to end, here.

1. starts the embedded control plane (`flowplane local`, in this process);
2. deploys every flow in the project's examples/ with `step-functions create`;
3. triggers ParameterFlow with `--alpha 0.5` and follows the run;
4. prints the runs and their artifacts, read back through the Client API over
   the control plane (as `Flow('ParameterFlow').latest_run.data.alpha` would);
5. waits for AfterParameterFlow, which its @trigger_on_finish starts when that run succeeds;
6. stops the plane, which ends every process it started.

The plane's state goes to a temporary folder removed at the end, unless
`--state-dir` keeps it (then `flowplane local --state-dir DIR` shows it again).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TRIGGERED = ("parameter_flow.py", ("--alpha", "0.5"))
# Deployed with @trigger_on_finish on TRIGGERED's flow: the demo waits for the run it starts.
DOWNSTREAM = "after_parameter_flow.py"


def flow_files(folder: Path) -> list[tuple[Path, str]]:
    """(file, flow class) for every file in `folder` that defines a FlowSpec subclass."""
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", None) == "FlowSpec" for b in node.bases):
                found.append((path, node.name))
    return found


def load_flow(path: Path, class_name: str) -> type:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_flowplane_demo_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return getattr(module, class_name)


def run_sdk(flow_cls: type, *args: str) -> str:
    """`python flow.py ARGS...`, in this process; its output. Raises with the output on failure."""
    from flowplane.cli import build_flow_cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            build_flow_cli(flow_cls).main(args=list(args), prog_name=flow_cls.__name__, standalone_mode=False)
        except SystemExit as e:
            if e.code not in (0, None):
                raise RuntimeError(f"{flow_cls.__name__} {' '.join(args)} failed:\n{out.getvalue()}") from None
        except Exception as e:
            raise RuntimeError(f"{flow_cls.__name__} {' '.join(args)} failed: {e}\n{out.getvalue()}") from None
    return out.getvalue()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flowplane.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", type=Path, default=None, help="keep the plane's state here (default: a temporary "
                   "folder removed at the end)")
    p.add_argument("--examples", type=Path, default=EXAMPLES, help="the folder of flows to deploy")
    args = p.parse_args(argv)

    from rich.console import Console

    console = Console(highlight=False)
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="flowplane-demo-"))
    state_dir = args.state_dir or scratch / "state"
    saved_env = {k: os.environ.get(k) for k in ("HOME", "FLOWPLANE_API_URL", "FLOWPLANE_USER")}
    if args.state_dir is None:
        # A throwaway plane: its production tokens stay out of ~/.flowplane too.
        os.environ["HOME"] = str(scratch / "home")
    os.environ.setdefault("FLOWPLANE_USER", os.environ.get("USER") or "demo")
    plane = None
    try:
        plane = _start_plane(console, state_dir)
        os.environ["FLOWPLANE_API_URL"] = plane.url
        flows = _deploy_all(console, args.examples)
        run_id = _trigger_and_follow(console, plane, flows)
        _show(console, flows, run_id)
        _follow_downstream(console, plane, flows, run_id)
        return 0
    except Exception as e:
        console.print(f"[red]The demo failed:[/red] {e}")
        return 1
    finally:
        if plane is not None:
            with console.status("Stopping the embedded control plane..."):
                plane.stop()
            left = [r for r in plane.batch.history if r.ended is None]
            console.print(f"[green]✓[/green] Control plane stopped; {len(plane.batch.history)} task processes ran, "
                          f"{len(left)} left running.")
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(scratch, ignore_errors=True)
        console.print(f"Demo done in {time.perf_counter() - started:.1f} s.")


def _start_plane(console: Any, state_dir: Path) -> Any:
    from flowplane.local.plane import LocalPlane, PlaneConfig

    with console.status("Starting the embedded control plane (moto + Chalice)...") as status:
        t0 = time.perf_counter()
        plane = LocalPlane(PlaneConfig(state_dir=state_dir, progress=lambda m: status.update(f"{m}..."))).start()
    console.print(f"[green]✓[/green] Control plane at {plane.url}, AWS embedded at {plane.endpoint} "
                  f"({time.perf_counter() - t0:.1f} s)")
    return plane


def _deploy_all(console: Any, folder: Path) -> dict[str, tuple[type, Path]]:
    flows = {}
    for path, class_name in flow_files(folder):
        with console.status(f"step-functions create: {path.name}..."):
            t0 = time.perf_counter()
            cls = load_flow(path, class_name)
            output = run_sdk(cls, "step-functions", "create")
        schedule = next((line.strip() for line in output.splitlines() if "triggers automatically" in line), "")
        namespace = next((line.strip() for line in output.splitlines() if line.strip().startswith("production:")), "")
        console.print(f"[green]✓[/green] Deployed [bold]{class_name}[/bold] from {path.name} "
                      f"({time.perf_counter() - t0:.1f} s) {namespace} {schedule}")
        flows[path.name] = (cls, path)
    if not flows:
        raise RuntimeError(f"no flows in {folder}")
    return flows


def _trigger_and_follow(console: Any, plane: Any, flows: dict[str, tuple[type, Path]]) -> str:
    name, args = TRIGGERED
    cls, _ = flows[name]
    output = run_sdk(cls, "step-functions", "trigger", *args)
    run_id = output.strip().splitlines()[-1]
    console.print(f"[green]✓[/green] Triggered {cls.__name__} {' '.join(args)}: run [bold]{run_id}[/bold]")
    from chalicelib.resource_names import state_machine_name  # the plane's own sources, loaded with it

    sfn = plane.session.client("stepfunctions")
    machine = state_machine_name(plane.settings.resource_prefix, cls.__name__)
    arn = f"arn:aws:states:{plane.region}:{plane.account}:execution:{machine}:{run_id.removeprefix('sfn-')}"
    t0 = time.perf_counter()
    with console.status("Running...") as status:
        while (found := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            _show_progress(status, plane, run_id, time.perf_counter() - t0)
            time.sleep(0.2)
        plane.settle()
    if found["status"] != "SUCCEEDED":
        raise RuntimeError(f"run {run_id} ended {found['status']}: {found.get('cause')}")
    console.print(f"[green]✓[/green] Run {run_id} SUCCEEDED in {time.perf_counter() - t0:.1f} s "
                  f"({len([r for r in plane.batch.history if r.run_id == run_id])} Batch jobs, run as local processes)")
    return run_id


def _follow_downstream(console: Any, plane: Any, flows: dict[str, tuple[type, Path]], upstream: str) -> None:
    """The flow deployed with @trigger_on_finish on the triggered one: it starts by itself."""
    if DOWNSTREAM not in flows:
        return
    from chalicelib.resource_names import state_machine_name

    cls, _ = flows[DOWNSTREAM]
    sfn = plane.session.client("stepfunctions")
    machine = f"arn:aws:states:{plane.region}:{plane.account}:stateMachine:" + state_machine_name(
        plane.settings.resource_prefix, cls.__name__)
    deadline = time.monotonic() + 60
    with console.status(f"Waiting for {cls.__name__}, triggered by that run's finish..."):
        while True:
            plane.settle(timeout=5)
            found = sfn.list_executions(stateMachineArn=machine)["executions"]
            if found and found[0]["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{cls.__name__} did not run after {upstream} finished")
            time.sleep(0.2)
        plane.settle()
    from flowplane.client import Flow

    run = Flow(cls.__name__)[f"sfn-{found[0]['name']}"]
    if not run.successful:
        raise RuntimeError(f"{cls.__name__} run {run.id} ended {found[0]['status']}")
    console.print(f"[green]✓[/green] {cls.__name__} started on its own when {upstream} succeeded "
                  f"(@trigger_on_finish): run {run.id}, Run.trigger.run is {run.trigger.run.pathspec}, "
                  f"upstream_alpha={run.data.upstream_alpha!r}")


def _show_progress(status: Any, plane: Any, run_id: str, elapsed: float) -> None:
    mine = [r for r in plane.batch.history if r.run_id == run_id]
    running = [r.step for r in mine if r.ended is None]
    done = [r.step for r in mine if r.ended is not None]
    status.update(f"Running ({elapsed:.0f} s): done {', '.join(done) or '-'}; running {', '.join(running) or '-'}")


def _show(console: Any, flows: dict[str, tuple[type, Path]], run_id: str) -> None:
    from rich.table import Table

    from flowplane.client import Flow, get_metadata, namespace

    namespace(None)
    cls, _ = flows[TRIGGERED[0]]
    run = Flow(cls.__name__)[run_id]
    table = Table(title=f"Runs read back through the Client API ({get_metadata()})")
    for column in ("Flow", "Run", "Status", "Step", "Task", "Artifacts"):
        table.add_column(column, overflow="fold")
    status = "succeeded" if run.successful else "failed"
    first = True
    for step in sorted(run, key=lambda s: s.created_at or 0):
        for task in step:
            values = ", ".join(f"{a.id}={_short(a.data)}" for a in task if not a.id.startswith("_")) or "-"
            table.add_row(cls.__name__ if first else "", run.id if first else "", status if first else "",
                          step.id, task.id, values)
            first = False
    console.print(table)
    console.print(f"Flow('{cls.__name__}')['{run_id}'].data.alpha == {run.data.alpha!r}; "
                  f"tags: {', '.join(sorted(run.tags))}")
    console.print(f"stdout of the start task (CloudWatch Logs): {run['start'].task.stdout.strip()!r}")


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
