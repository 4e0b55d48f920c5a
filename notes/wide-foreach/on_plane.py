"""The same Distributed Map through the embedded plane (flowplane.local.plane.LocalPlane), spike for issue 15."""
import importlib.util, json, tempfile, time
from collections import Counter
from pathlib import Path
import boto3
from flowplane.local.plane import LocalPlane, PlaneConfig

spec = importlib.util.spec_from_file_location("spike", Path(__file__).with_name("spike.py"))
spike = importlib.util.module_from_spec(spec); spec.loader.exec_module(spike)

seen = []
with tempfile.TemporaryDirectory() as d, LocalPlane(PlaneConfig(state_dir=Path(d) / "s", persist=False, vcpus=2, on_execution=lambda e: seen.append((e["executionArn"].rsplit(":", 2)[-2:], e["status"])))) as plane:
    kw = dict(endpoint_url=plane.endpoint, region_name=plane.region, aws_access_key_id="x", aws_secret_access_key="x")
    s3, sfn, iam = (boto3.client(s, **kw) for s in ("s3", "stepfunctions", "iam"))
    role = iam.create_role(RoleName="spike-wide", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    s3.create_bucket(Bucket=spike.BUCKET)
    slim = {"ResultSelector": {"n.$": "States.ArrayLength($)"}, "ResultPath": "$.fe"}
    fail_child = {"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.idx", "NumericEquals": 3, "Next": "F"}], "Default": "OK"},
        "F": {"Type": "Fail", "Error": "Item3", "Cause": "item 3 failed"}, "OK": {"Type": "Pass", "End": True}}}
    for label, n, child in (("pass n=1000", 1000, spike.PASS_CHILD), ("pass n=10000 MaxConcurrency=1000", 10000, spike.PASS_CHILD), ("item 3 fails n=6", 6, fail_child)):
        s3.put_object(Bucket=spike.BUCKET, Key=f"items-{n}.json", Body=json.dumps(list(range(n))).encode())
        definition = spike.dmap(child, 1000 if n == 10000 else None, slim, key=f"items-{n}.json")
        sm = sfn.create_state_machine(name=f"wide{n}", definition=json.dumps(definition), roleArn=role)["stateMachineArn"]
        t = time.monotonic()
        ex = sfn.start_execution(stateMachineArn=sm, name=f"run{n}", input="{}")["executionArn"]
        while (desc := sfn.describe_execution(executionArn=ex))["status"] == "RUNNING" and time.monotonic() - t < 300:
            time.sleep(0.1)
        dt = time.monotonic() - t
        hist = sfn.get_execution_history(executionArn=ex, maxResults=1000)["events"]
        runs = sfn.list_map_runs(executionArn=ex)["mapRuns"]
        mr = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]) if runs else {}
        print(f"## plane {label}: status={desc['status']} wall_s={dt:.2f} output={desc.get('output')} "
              f"history={len(hist)} {dict(Counter(e['type'] for e in hist))} map_run={mr.get('status')} items={mr.get('itemCounts')} "
              f"executions_listed={[(e['name'], e['status']) for e in sfn.list_executions(stateMachineArn=sm)['executions']]}", flush=True)
    time.sleep(1)
    print("## status changes reported by the plane's ExecutionWatcher (on_execution):", seen)
