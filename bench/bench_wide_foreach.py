"""Wide foreach (issue 15): a 1,000-item run on the embedded plane, and what a foreach costs
per item in history events and state transitions, Distributed Map against inline.

1. The path a user takes: a fresh HOME, nothing started by hand (the first command starts
   the background plane), `examples/wide_foreach_flow.py` deployed with
   `step-functions create --max-workers 50`, `step-functions trigger --width 1000`, timed
   until the run's `end` task is readable through the Client API from a new interpreter.
   Reported: wall time, tasks per second, how long after that every item's task is readable
   (recording's lag behind the run), and the run's own history events per item (read from
   Step Functions).
2. Per item, on moto in process (Batch jobs succeed at once): the compiled definition run as
   it is (Distributed Map) and rewritten with the same iteration body as an inline Map (what
   the compiler emitted before), at 10 and 50 items: the parent's history events per item
   (the slope), and the
   state transitions per item AWS bills: the body's states, plus one per child execution for
   a Distributed Map ("Transitions in Distributed Map states", Step Functions developer guide).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import BenchContext, Row, user_env, user_shell

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 1000
PER_ITEM_WIDTH = 50

WAIT_FOR_END = """
import sys, time
from flowplane import Flow, namespace
namespace(None)
run = Flow("WideForeachFlow")[sys.argv[1]]
while not run.finished:
    time.sleep(0.5)
    run = Flow("WideForeachFlow")[sys.argv[1]]
print(run.successful)
"""

# From the run read back finished, how long until a listing of the step's tasks through the
# Client API began that found every item's task (0 when recording kept up), how many
# listings that took, and how long the last one took.
WAIT_FOR_RECORDS = """
import sys, time
from flowplane import Flow, namespace
namespace(None)
t0 = time.perf_counter()
listings = 0
while True:
    began = time.perf_counter()
    listings += 1
    found = sum(1 for _ in Flow("WideForeachFlow")[sys.argv[1]]["score"].tasks_by_index())
    if found >= int(sys.argv[2]):
        break
    time.sleep(0.5)
print(began - t0, listings, time.perf_counter() - began)
"""

def _wide_run(ctx: BenchContext, base: Path) -> tuple[float, int, tuple[float, int, float]]:
    """(seconds from trigger to the run read back finished, the run's history events, and
    WAIT_FOR_RECORDS' three figures)."""
    home, work = base / "home", base / "work"
    home.mkdir(parents=True)
    work.mkdir(parents=True)
    flow = work / "wide_foreach_flow.py"
    flow.write_text((ROOT / "examples" / "wide_foreach_flow.py").read_text())
    env = user_env(home)

    run = user_shell(ctx.python, work, env)

    try:
        run(str(flow), "step-functions", "create", "--max-workers", "50")
        t0 = time.perf_counter()
        run_id = run(str(flow), "step-functions", "trigger", "--width", str(WIDTH)).strip().splitlines()[-1]
        ok = run("-c", WAIT_FOR_END, run_id).strip().splitlines()[-1]
        seconds = time.perf_counter() - t0
        if ok != "True":
            raise RuntimeError(f"the {WIDTH}-item run did not succeed")
        lag, listings, listing = run("-c", WAIT_FOR_RECORDS, run_id, str(WIDTH)).strip().splitlines()[-1].split()
        events = int(run("-c", _COUNT_HISTORY, run_id).strip().splitlines()[-1])
        return seconds, events, (float(lag), int(listings), float(listing))
    finally:
        subprocess.run([ctx.python, "-m", "flowplane", "local", "stop"], cwd=work, env=env, capture_output=True)


# The run's history, from the background plane's Step Functions (its endpoint and state
# machine name as the SDK finds them).
_COUNT_HISTORY = """
import sys
import boto3
from flowplane.local.location import default_state_dir
from flowplane.local.service import status
endpoint = status(default_state_dir())["endpoint"]
sfn = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local",
                            region_name="us-east-1").client("stepfunctions", endpoint_url=endpoint)
machine = next(m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]
               if m["name"].endswith("WideForeachFlow"))
arn = machine.replace(":stateMachine:", ":execution:") + ":" + sys.argv[1].removeprefix("sfn-")
n, token = 0, None
while True:
    page = sfn.get_execution_history(executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {}))
    n += len(page["events"])
    token = page.get("nextToken")
    if not token:
        break
print(n)
"""


def _as_inline(definition: dict[str, Any], width: int) -> dict[str, Any]:
    """The same machine with each Distributed Map turned into an inline Map over a literal list."""
    inline = copy.deepcopy(definition)
    states = inline["States"]
    for name, state in list(states.items()):
        if state.get("Type") == "Map" and "ItemReader" in state:
            items = f"{name}-items"
            states[items] = {"Type": "Pass", "Result": list(range(width)), "ResultPath": "$.items", "Next": name}
            for before in states.values():
                if before.get("Next") == name and before is not states[items]:
                    before["Next"] = items
            state.pop("ItemReader")
            state["ItemsPath"] = "$.items"
            state["ItemProcessor"]["ProcessorConfig"] = {"Mode": "INLINE"}
    return inline


def _history_events(mode: str, width: int) -> tuple[int, int]:
    """(the run's history events, the foreach body's states) of one run at `width` items."""
    import boto3
    from moto import mock_aws

    from chalicelib.compiler import CompileSettings, compile_state_machine
    from flowplane.foreach_items import items_body, items_key
    from flowplane.local.moto_patches import patched_moto_batch
    from tests.support.compiler_shapes import manifest_for

    region = "us-east-1"
    manifest = manifest_for((ROOT / "examples" / "wide_foreach_flow.py").read_text(), max_workers=50)
    config = {"stepfunctions": {"execute_state_machine": True}, "batch": {"use_docker": False}}
    with mock_aws(config=config), patched_moto_batch():
        iam, batch, s3 = (boto3.client(s, region_name=region) for s in ("iam", "batch", "s3"))
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        ce = batch.create_compute_environment(computeEnvironmentName="fp-ce", type="UNMANAGED",
                                              state="ENABLED", serviceRole=role)["computeEnvironmentArn"]
        queue = batch.create_job_queue(jobQueueName="fp-q", state="ENABLED", priority=1,
                                       computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])
        batch.register_job_definition(jobDefinitionName="fp-task", type="container",
                                      containerProperties={"image": "x", "vcpus": 1, "memory": 128})
        s3.create_bucket(Bucket="fp-data")
        settings = CompileSettings(job_queue=queue["jobQueueArn"], job_definition="fp-task",
                                   datastore_root="s3://fp-data/data", region=region)
        definition = compile_state_machine(manifest, "s3://fp-data/packages/x.tar.gz", settings)
        body_states = len(definition["States"]["start-foreach"]["ItemProcessor"]["States"])
        if mode == "inline":
            definition = _as_inline(definition, width)
        key = "data/" + items_key("WideForeachFlow", "sfn-r", "start", "1")
        s3.put_object(Bucket="fp-data", Key=key, Body=items_body(width))
        sfn = boto3.client("stepfunctions", region_name=region)
        arn = sfn.create_state_machine(name="w", definition=json.dumps(definition), roleArn=role)
        ex = sfn.start_execution(stateMachineArn=arn["stateMachineArn"], name="r", input="{}")["executionArn"]
        while (d := sfn.describe_execution(executionArn=ex))["status"] == "RUNNING":
            time.sleep(0.05)
        if d["status"] != "SUCCEEDED":
            raise RuntimeError(f"{mode} at {width} items: {d}")
        return len(sfn.get_execution_history(executionArn=ex, maxResults=1000)["events"]), body_states


def _per_item() -> dict[str, float]:
    """History events per item as the slope between two widths; transitions from the body."""
    sys.path.insert(0, str(ROOT))
    from flowplane.local.moto_patches import install_jsonpath_cache

    os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x")
    narrow = 10
    out: dict[str, float] = {}
    undo = install_jsonpath_cache()
    try:
        for mode in ("distributed", "inline"):
            (small, body), (large, _) = _history_events(mode, narrow), _history_events(mode, PER_ITEM_WIDTH)
            out[f"{mode} history"] = (large - small) / (PER_ITEM_WIDTH - narrow)
            out[f"{mode} events"] = large
            # AWS bills each state entered; a Distributed Map also one per child execution started.
            out[f"{mode} transitions"] = body + (1 if mode == "distributed" else 0)
    finally:
        undo()
    return out


def run(ctx: BenchContext) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        seconds, events, recorded = _wide_run(ctx, Path(tmp) / "user")
    tasks = WIDTH + 3
    rows.append(Row(f"{WIDTH}-item foreach on the embedded plane, trigger -> read back", seconds, "s",
                    note=f"{tasks / seconds:.1f} tasks/s, --max-workers 50, default path"))
    lag, listings, listing = recorded
    rows.append(Row(f"  then until all {WIDTH} item tasks are recorded (recording's lag)", lag, "s",
                    note=f"{listings} listing(s) by Step.tasks_by_index() from a new process, "
                         f"the last {listing:.2f} s"))
    rows.append(Row("  the run's own history events per item (Distributed Map)", events / WIDTH, "",
                    note=f"{events} events in all, whatever the width; the 25,000 cap is never near"))
    per_item = _per_item()
    rows.append(Row("  parent history events per item, inline Map (before)", per_item["inline history"], "",
                    note=f"slope 10 -> {PER_ITEM_WIDTH} items on moto; 25,000 / this = the widest inline foreach"))
    rows.append(Row("  parent history events per item, Distributed Map", per_item["distributed history"], "",
                    note=f"slope 10 -> {PER_ITEM_WIDTH} items; {per_item['distributed events']:.0f} events at {PER_ITEM_WIDTH}"))
    for mode in ("inline", "distributed"):
        rows.append(Row(f"  state transitions billed per item, {mode}", per_item[f"{mode} transitions"], "",
                        note="the body's states" + (" + 1 per child execution" if mode == "distributed" else "")))
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    for row in run(BenchContext(repeat=1)):
        print(row.render())
