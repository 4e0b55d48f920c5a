"""Spike for issue 15: what moto 5.2.1's Step Functions interpreter does with a Distributed Map.

Run: .venv/bin/python notes/wide-foreach/spike.py [experiment ...]
Each experiment gets its own in-process mock_aws session (moto#10077 aside).
Not product code; the numbers in notes/wide-foreach.md come from this file.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter

import boto3
from moto import mock_aws

from flowplane.local.moto_patches import moto_second_execution_fix, patched_moto_batch

R = "us-east-1"
CFG = {"stepfunctions": {"execute_state_machine": True}, "batch": {"use_docker": False}}
BUCKET = "fp-items"


def dmap(child: dict, max_conc: int | None = None, extra: dict | None = None, key: str = "items.json") -> dict:
    m = {
        "Type": "Map",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {"Bucket": BUCKET, "Key": key},
        },
        "ItemSelector": {"idx.$": "$$.Map.Item.Index", "val.$": "$$.Map.Item.Value", "fp.$": "$.fp"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, **child},
        "End": True,
    }
    if max_conc is not None:
        m["MaxConcurrency"] = max_conc
    m.update(extra or {})
    return {"StartAt": "ctx", "States": {"ctx": {"Type": "Pass", "Parameters": {"fp": {"k": "shared"}}, "Next": "M"}, "M": m}}


PASS_CHILD = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


class Env:
    def __init__(self):
        iam = boto3.client("iam", region_name=R)
        self.role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        self.s3 = boto3.client("s3", region_name=R)
        self.s3.create_bucket(Bucket=BUCKET)
        self.sfn = boto3.client("stepfunctions", region_name=R)
        self.n = 0

    def items(self, n: int, key: str = "items.json"):
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(list(range(n))).encode())

    def start(self, definition: dict, name: str = "run1"):
        self.n += 1
        arn = self.sfn.create_state_machine(name=f"sm{self.n}", definition=json.dumps(definition), roleArn=self.role)[
            "stateMachineArn"
        ]
        return arn, self.sfn.start_execution(stateMachineArn=arn, name=name, input="{}")["executionArn"]

    def wait(self, ex: str, timeout: float = 600):
        t = time.monotonic()
        while (d := self.sfn.describe_execution(executionArn=ex))["status"] == "RUNNING":
            if time.monotonic() - t > timeout:
                return d, time.monotonic() - t
            time.sleep(0.05)
        return d, time.monotonic() - t

    def history(self, ex: str):
        ev, tok = [], None
        while True:
            kw = {"executionArn": ex, "maxResults": 1000}
            if tok:
                kw["nextToken"] = tok
            page = self.sfn.get_execution_history(**kw)
            ev += page["events"]
            tok = page.get("nextToken")
            if not tok:
                return ev


def out(title, **kw):
    print(f"## {title}")
    for k, v in kw.items():
        print(f"  {k}: {v}")
    sys.stdout.flush()


def e1_width(sizes=(10, 1000, 10000), max_conc=None, slim=True):
    # slim: keep only the count, as chalicelib/compiler/foreach.py's Map does (else 10,000 outputs > 256 KiB)
    extra = {"ResultSelector": {"n.$": "States.ArrayLength($)"}, "ResultPath": "$.fe"} if slim else None
    for n in sizes:
        with mock_aws(config=CFG):
            env = Env()
            env.items(n)
            _, ex = env.start(dmap(PASS_CHILD, max_conc, extra))
            threads0 = threading.active_count()
            peak = [threads0]
            d, dt = None, 0
            t = time.monotonic()
            while (d := env.sfn.describe_execution(executionArn=ex))["status"] == "RUNNING" and time.monotonic() - t < 900:
                peak[0] = max(peak[0], threading.active_count())
                time.sleep(0.05)
            dt = time.monotonic() - t
            hist = env.history(ex)
            outp = json.loads(d.get("output") or "null")
            out(
                f"E1 width n={n} MaxConcurrency={max_conc} slim={slim}",
                status=d["status"],
                wall_s=round(dt, 2),
                peak_threads=peak[0],
                parent_history_events=len(hist),
                event_types=dict(Counter(e["type"] for e in hist)),
                output=outp if not isinstance(outp, list) else f"list of {len(outp)}",
                first_outputs=outp[:2] if isinstance(outp, list) else None,
            )


def e1_concurrency(n=12, conc=(None, 3)):
    wait_child = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}}
    for c in conc:
        with mock_aws(config=CFG):
            env = Env()
            env.items(n)
            _, ex = env.start(dmap(wait_child, c))
            d, dt = env.wait(ex)
            out(f"E1 concurrency n={n} Wait 1s child MaxConcurrency={c}", status=d["status"], wall_s=round(dt, 2),
                expected_if_honoured=f"~{-(-n // c) if c else 1} s")


def e1_result_writer(n=5):
    with mock_aws(config=CFG):
        env = Env()
        env.items(n)
        rw = {"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": BUCKET, "Prefix": "results/"}}}
        _, ex = env.start(dmap(PASS_CHILD, None, rw))
        d, dt = env.wait(ex)
        keys = [o["Key"] for o in env.s3.list_objects_v2(Bucket=BUCKET, Prefix="results/").get("Contents", [])]
        bodies = {k: env.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read().decode()[:400] for k in keys}
        out("E1 ResultWriter", status=d["status"], error=d.get("error"), cause=(d.get("cause") or "")[:300],
            output=(d.get("output") or "")[:400], keys=keys, bodies=bodies)


def e3_visibility(n=3):
    with mock_aws(config=CFG):
        env = Env()
        env.items(n)
        sm, ex = env.start(dmap(PASS_CHILD, 2))
        d, dt = env.wait(ex)
        runs = env.sfn.list_map_runs(executionArn=ex)["mapRuns"]
        desc = env.sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]) if runs else None
        execs = env.sfn.list_executions(stateMachineArn=sm)["executions"]
        try:
            by_map = env.sfn.list_executions(mapRunArn=runs[0]["mapRunArn"])["executions"] if runs else None
        except Exception as e:  # noqa: BLE001
            by_map = f"{type(e).__name__}: {e}"
        hist = env.history(ex)
        out("E3 visibility", status=d["status"], output=d.get("output"), list_map_runs=runs,
            describe_map_run={k: v for k, v in (desc or {}).items() if k != "ResponseMetadata"},
            list_executions_of_machine=[(e["name"], e["status"]) for e in execs],
            list_executions_by_map_run=by_map,
            history=[(e["id"], e["type"]) for e in hist])


def e4_failure(n=6, tolerated=None):
    child = {
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.idx", "NumericEquals": 3, "Next": "F"}], "Default": "OK"},
            "F": {"Type": "Fail", "Error": "Item3", "Cause": "item 3 failed"},
            "OK": {"Type": "Pass", "End": True},
        },
    }
    extra = {} if tolerated is None else {"ToleratedFailurePercentage": tolerated}
    with mock_aws(config=CFG):
        env = Env()
        env.items(n)
        _, ex = env.start(dmap(child, 2, extra))
        d, dt = env.wait(ex, 60)
        hist = env.history(ex)
        runs = env.sfn.list_map_runs(executionArn=ex)["mapRuns"]
        desc = env.sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]) if runs else {}
        out(f"E4 one child fails, ToleratedFailurePercentage={tolerated}", status=d["status"], wall_s=round(dt, 2),
            error=d.get("error"), cause=(d.get("cause") or "")[:300],
            history_types=[e["type"] for e in hist],
            map_run_status=desc.get("status"), item_counts=desc.get("itemCounts"), execution_counts=desc.get("executionCounts"))


def e4_stop(n=6):
    child = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 2, "Next": "P"}, "P": {"Type": "Pass", "End": True}}}
    with mock_aws(config=CFG):
        env = Env()
        env.items(n)
        _, ex = env.start(dmap(child, 2))
        time.sleep(1.0)
        env.sfn.stop_execution(executionArn=ex, error="Stopped", cause="spike")
        t = time.monotonic()
        d, _ = env.wait(ex, 30)
        stopped_in = time.monotonic() - t
        runs = env.sfn.list_map_runs(executionArn=ex)["mapRuns"]
        snap = []
        for _ in range(4):
            desc = env.sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]) if runs else {}
            snap.append((desc.get("status"), desc.get("itemCounts", {}).get("succeeded"), desc.get("itemCounts", {}).get("running")))
            time.sleep(1.5)
        hist = env.history(ex)
        out("E4 stop parent mid-run", status=d["status"], stopped_within_s=round(stopped_in, 2),
            map_run_after_stop_every_1_5s=snap, history_types=[e["type"] for e in hist],
            threads_alive=[t.name for t in threading.enumerate()][:10])


def batch_env(env: Env):
    batch = boto3.client("batch", region_name=R)
    ce = batch.create_compute_environment(computeEnvironmentName="fp-ce", type="UNMANAGED", state="ENABLED", serviceRole=env.role)["computeEnvironmentArn"]
    q = batch.create_job_queue(jobQueueName="fp-q", state="ENABLED", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])["jobQueueArn"]
    batch.register_job_definition(jobDefinitionName="fp-jd", type="container", containerProperties={"image": "x", "vcpus": 1, "memory": 512})
    return batch, q


def batch_task(step: str, task_id: str) -> dict:
    # The shape chalicelib/compiler/asl.py _task() emits (env trimmed).
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": {
            "JobName": f"F-{step}",
            "JobQueue.$": "$.fp.queue",
            "JobDefinition.$": "$.fp.jobdef",
            "ContainerOverrides": {
                "Command.$": f"States.Array('flowplane','task','--step','{step}','--task-id',{task_id},'--retry-count',States.Format('{{}}',$$.State.RetryCount))",
                "Environment.$": "$.fp.env",
            },
        },
        "ResultPath": None,
        "Retry": [{"ErrorEquals": ["Batch.AWSBatchException"], "IntervalSeconds": 2, "MaxAttempts": 10, "BackoffRate": 2, "JitterStrategy": "FULL"}],
    }


def e2_batch(n=20, nested=True):
    inner = {
        "Type": "Map",
        "ItemsPath": "$.inner",
        "ItemSelector": {"fp.$": "$.fp", "tid.$": "States.Format('{}.{}', $.tid, $$.Map.Item.Value)"},
        "MaxConcurrency": 2,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "inner_step", "States": {"inner_step": {**batch_task("inner_step", "$.tid"), "End": True}}},
        "ResultSelector": {"n.$": "States.ArrayLength($)"},
        "ResultPath": "$.fe",
        "End": True,
    }
    body = {"StartAt": "mk", "States": {
        "mk": {"Type": "Pass", "Parameters": {"fp.$": "$.fp", "tid.$": "States.Format('1.{}', $.val)", "inner": [0, 1]}, "Next": "body"},
        "body": {**batch_task("body", "$.tid"), **({"Next": "inner"} if nested else {"End": True})},
        **({"inner": inner} if nested else {}),
    }}
    with mock_aws(config=CFG), patched_moto_batch(), moto_second_execution_fix():
        env = Env()
        batch, q = batch_env(env)
        env.items(n)
        d = dmap(body, 5)
        d["States"]["ctx"]["Parameters"] = {"fp": {"queue": q, "jobdef": "fp-jd", "env": [{"Name": "A", "Value": "1"}]}}
        d["States"]["M"]["ItemSelector"] = {"fp.$": "$.fp", "val.$": "$$.Map.Item.Value"}
        _, ex = env.start(d)
        dd, dt = env.wait(ex, 300)
        jobs = []
        for st in ("SUCCEEDED", "FAILED", "RUNNING", "SUBMITTED", "RUNNABLE", "STARTING", "PENDING"):
            jobs += [(j["jobName"], st) for j in batch.list_jobs(jobQueue=q, jobStatus=st)["jobSummaryList"]]
        ids = [j["jobId"] for j in batch.list_jobs(jobQueue=q, jobStatus="SUCCEEDED")["jobSummaryList"]]
        cmds = []
        for i in range(0, len(ids), 100):
            cmds += [j["container"]["command"][5] for j in batch.describe_jobs(jobs=ids[i:i + 100])["jobs"]]
        hist = env.history(ex)
        out(f"E2 batch submitJob.sync in DISTRIBUTED child n={n} nested_inline_map={nested}", status=dd["status"],
            error=dd.get("error"), cause=(dd.get("cause") or "")[:400], wall_s=round(dt, 2),
            jobs_by_name_status=dict(Counter(jobs)), distinct_task_ids=len(set(cmds)), sample_task_ids=sorted(set(cmds))[:8],
            parent_history_events=len(hist), parent_event_types=dict(Counter(e["type"] for e in hist)))


def e2_batch_fail(n=4):
    """A child's Batch job fails: does the parent fail, naming the step?"""
    from moto.batch.models import BatchBackend  # noqa: F401
    body = {"StartAt": "body", "States": {"body": {**batch_task("body", "States.Format('1.{}', $.val)"), "End": True}}}
    with mock_aws(config=CFG), patched_moto_batch():
        env = Env()
        batch, q = batch_env(env)
        env.items(n)
        d = dmap(body, 2)
        d["States"]["ctx"]["Parameters"] = {"fp": {"queue": q, "jobdef": "fp-jd", "env": []}}
        d["States"]["M"]["ItemSelector"] = {"fp.$": "$.fp", "val.$": "$$.Map.Item.Value"}
        # moto_batch fails a job whose command... not controllable here; use a bad job definition for one item instead
        d["States"]["M"]["ItemProcessor"]["States"]["body"]["Parameters"].pop("JobDefinition.$")
        d["States"]["M"]["ItemProcessor"]["States"]["body"]["Parameters"]["JobDefinition"] = "does-not-exist"
        _, ex = env.start(d)
        dd, dt = env.wait(ex, 60)
        out("E2 Batch task error in child (unknown job definition)", status=dd["status"], error=dd.get("error"),
            cause=(dd.get("cause") or "")[:300], wall_s=round(dt, 2))


EXPS = {f.__name__: f for f in (e1_width, e1_concurrency, e1_result_writer, e3_visibility, e4_failure, e4_stop, e2_batch, e2_batch_fail)}

if __name__ == "__main__":
    for name in sys.argv[1:] or EXPS:
        if ":" in name:
            fn, arg = name.split(":", 1)
            EXPS[fn](**json.loads(arg))
        else:
            EXPS[name]()
