"""The embedded plane's parts that need no plane: schedule times, the scheduler on a
hand-moved clock, status events (each once, in the shape the recorder parses), the
moto fixes' undo, and the SDK's choice of control plane."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from chalicelib.recording.events import ExecutionStatusChange, JobStateChange
from chalicelib.deploy.schedules import input_transformer
from flowplane.user_config import ConfigError
from flowplane.local import discover, moto_patches
from flowplane.local.events import ExecutionWatcher, batch_job_event, execution_status_event
from flowplane.local.plane import read_url_file
from flowplane.local.scheduler import ManualClock, ScheduleError, Scheduler, next_time, target_input

pytestmark = pytest.mark.aws

UTC = timezone.utc


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- schedule times ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression,after,expected",
    [
        ("cron(0 * * * ? *)", at(2026, 11, 24, 10, 30), at(2026, 11, 24, 11, 0)),
        ("cron(0 * * * ? *)", at(2026, 11, 24, 11, 0), at(2026, 11, 24, 12, 0)),  # strictly after
        ("cron(0 0 * * ? *)", at(2026, 11, 24, 10, 30), at(2026, 11, 25, 0, 0)),
        ("cron(0 0 ? * SUN *)", at(2026, 11, 24, 10, 30), at(2026, 11, 29, 0, 0)),  # a Sunday
        ("cron(0 10 * * ? *)", at(2026, 11, 24, 10, 30), at(2026, 11, 25, 10, 0)),
    ],
)
def test_cron_times_follow_aws_six_field_syntax(expression, after, expected):
    assert next_time(expression, after) == expected


def test_rates_count_from_when_the_rule_was_first_seen():
    seen = at(2026, 11, 24, 10, 2, 30)
    assert next_time("rate(5 minutes)", seen, seen) == at(2026, 11, 24, 10, 7, 30)
    assert next_time("rate(5 minutes)", at(2026, 11, 24, 10, 7, 30), seen) == at(2026, 11, 24, 10, 12, 30)
    assert next_time("rate(1 hour)", at(2026, 11, 24, 12, 0), seen) == at(2026, 11, 24, 12, 2, 30)
    assert next_time("rate(2 days)", seen, seen) == at(2026, 11, 26, 10, 2, 30)


@pytest.mark.parametrize("expression", ["cron(99 99 * * ? *)", "rate(0 minutes)", "at(2026-01-01T00:00:00)", "daily"])
def test_unreadable_expressions_are_named(expression):
    with pytest.raises(ScheduleError, match=r"rate|cron|cannot read"):
        next_time(expression, at(2026, 11, 24))


# --- the scheduler -----------------------------------------------------------------------------


class FakeEvents:
    """The two EventBridge calls the scheduler makes, over rules held in a dict."""

    def __init__(self) -> None:
        self.rules: dict[str, dict] = {}
        self.targets: dict[str, list] = {}

    def put(self, name: str, expression: str, targets: list, state: str = "ENABLED") -> None:
        arn = f"arn:aws:events:us-east-1:123456789012:rule/{name}"
        self.rules[name] = {"Name": name, "Arn": arn, "ScheduleExpression": expression, "State": state}
        self.targets[name] = targets

    def list_rules(self, **kwargs) -> dict:
        return {"Rules": list(self.rules.values())}

    def describe_rule(self, Name: str) -> dict:
        return self.rules[Name]

    def list_targets_by_rule(self, Rule: str) -> dict:
        return {"Targets": self.targets[Rule]}


LAUNCHER = "arn:aws:lambda:us-east-1:123456789012:function:flowplane-local-launch"


@pytest.fixture()
def scheduled():
    events, calls = FakeEvents(), []
    clock = ManualClock(at(2026, 11, 24, 10, 30))

    def invoke(handler, payload):
        calls.append((handler, payload))
        return {"ok": handler}

    scheduler = Scheduler(events, invoke, "flowplane-local-", "us-east-1", "123456789012", clock)
    return events, calls, clock, scheduler


def test_a_rule_fires_at_its_times_after_it_is_first_seen(scheduled):
    events, calls, clock, scheduler = scheduled
    events.put("flowplane-HourlyFlow", "cron(0 * * * ? *)",
               [{"Id": "t", "Arn": LAUNCHER, "InputTransformer": input_transformer("HourlyFlow")}])
    assert scheduler.tick() == []
    clock.set(at(2026, 11, 24, 11, 0))
    fired = scheduler.tick()
    assert [(f.rule, f.time, f.result) for f in fired] == [("flowplane-HourlyFlow", at(2026, 11, 24, 11), {"ok": "launch"})]
    # What the launcher gets is the rule's input transformer applied to the Scheduled Event.
    assert calls == [("launch", {"flow": "HourlyFlow", "time": "2026-11-24T11:00:00Z",
                                 "rule": "arn:aws:events:us-east-1:123456789012:rule/flowplane-HourlyFlow"})]
    assert scheduler.tick() == []
    clock.advance(minutes=59)
    assert scheduler.tick() == []
    clock.advance(minutes=1)
    assert [f.time for f in scheduler.tick()] == [at(2026, 11, 24, 12, 0)]


def test_a_jump_over_many_times_fires_only_the_latest(scheduled):
    events, calls, clock, scheduler = scheduled
    events.put("r", "cron(0 * * * ? *)", [{"Id": "t", "Arn": LAUNCHER}])
    scheduler.tick()
    clock.set(at(2026, 11, 24, 15, 10))  # asleep from 10:30 to 15:10
    assert [(f.time, f.skipped) for f in scheduler.tick()] == [(at(2026, 11, 24, 15, 0), 4)]
    # Without an input transformer the target gets the Scheduled Event itself.
    event = calls[0][1]
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["time"] == "2026-11-24T15:00:00Z" and event["resources"] == [events.rules["r"]["Arn"]]


def test_disabled_rules_and_foreign_targets_do_not_fire(scheduled):
    events, calls, clock, scheduler = scheduled
    events.put("off", "cron(0 * * * ? *)", [{"Id": "t", "Arn": LAUNCHER}], state="DISABLED")
    events.put("machine", "cron(0 * * * ? *)", [{"Id": "t", "Arn": "arn:aws:states:us-east-1:1:stateMachine:X"}])
    events.put("other-app", "cron(0 * * * ? *)", [{"Id": "t", "Arn": LAUNCHER.replace("flowplane-local-", "x-")}])
    scheduler.tick()
    clock.set(at(2026, 11, 24, 11))
    fired = scheduler.tick()
    assert sorted(f.rule for f in fired) == ["machine", "other-app"] and calls == []
    assert all("not a function of this control plane" in f.error for f in fired)


class FakeScheduler:
    """The two EventBridge Scheduler calls the local scheduler makes."""

    def __init__(self) -> None:
        self.schedules: dict[str, dict] = {}

    def put(self, name: str, expression: str, zone: str, payload: str, state: str = "ENABLED") -> None:
        self.schedules[name] = {
            "Name": name, "GroupName": "default", "Arn": f"arn:aws:scheduler:us-east-1:123456789012:schedule/default/{name}",
            "ScheduleExpression": expression, "ScheduleExpressionTimezone": zone, "State": state,
            "Target": {"Arn": LAUNCHER, "RoleArn": "arn:aws:iam::123456789012:role/r", "Input": payload},
        }

    def list_schedules(self, State: str, **kwargs) -> dict:
        return {"Schedules": [{"Name": n, "GroupName": "default"} for n, s in self.schedules.items() if s["State"] == State]}

    def get_schedule(self, Name: str, GroupName: str) -> dict:
        return self.schedules[Name]


def test_a_scheduler_schedule_fires_in_its_zone_across_a_dst_change(scheduled):
    from chalicelib.deploy.schedules import scheduler_input

    events, calls, clock, scheduler = scheduled
    scheduler.scheduler_client = zoned = FakeScheduler()
    zoned.put("s", "cron(30 2 * * ? *)", "Europe/Amsterdam", scheduler_input("F"))
    zoned.put("off", "cron(30 2 * * ? *)", "Europe/Amsterdam", scheduler_input("G"), state="DISABLED")
    clock.set(at(2026, 3, 27, 12))
    scheduler.tick()
    fired = []
    while clock.now() < at(2026, 3, 31, 12):
        clock.advance(minutes=30)
        fired.extend(scheduler.tick())
    assert [(f.rule, f.time) for f in fired] == [
        ("s", at(2026, 3, 28, 1, 30)), ("s", at(2026, 3, 30, 0, 30)), ("s", at(2026, 3, 31, 0, 30))]
    # The target's Input with Scheduler's context attributes filled in.
    assert calls[0] == ("launch", {"flow": "F", "time": "2026-03-28T01:30:00Z",
                                   "rule": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/s"})
    # A changed zone starts a new window, as a changed expression does.
    zoned.put("s", "cron(30 2 * * ? *)", "America/New_York", scheduler_input("F"))
    assert scheduler.tick() == []
    clock.set(at(2026, 4, 1, 6, 30))
    assert [f.time for f in scheduler.tick()] == [at(2026, 4, 1, 6, 30)]


def test_a_changed_expression_starts_a_new_window(scheduled):
    events, calls, clock, scheduler = scheduled
    events.put("r", "cron(0 * * * ? *)", [{"Id": "t", "Arn": LAUNCHER}])
    scheduler.tick()
    clock.set(at(2026, 11, 24, 10, 45))
    events.put("r", "cron(50 * * * ? *)", [{"Id": "t", "Arn": LAUNCHER}])
    assert scheduler.tick() == []
    clock.set(at(2026, 11, 24, 10, 50))
    assert [f.time for f in scheduler.tick()] == [at(2026, 11, 24, 10, 50)]


def test_a_failing_target_is_recorded_and_the_others_still_fire(scheduled):
    events, calls, clock, scheduler = scheduled

    def invoke(handler, payload):
        if handler == "launch":
            raise RuntimeError("boom")
        return "ok"

    scheduler.invoke = invoke
    events.put("a", "cron(0 * * * ? *)", [{"Id": "t", "Arn": LAUNCHER}])
    events.put("b", "cron(0 * * * ? *)", [{"Id": "t", "Arn": LAUNCHER.replace("launch", "reconcile")}])
    scheduler.tick()
    clock.set(at(2026, 11, 24, 11))
    fired = {f.rule: f for f in scheduler.tick()}
    assert fired["a"].error == "RuntimeError: boom" and fired["b"].result == "ok"


def test_target_input_kinds():
    event = {"time": "2026-11-24T11:00:00Z", "resources": ["arn:r"], "detail": {"x": 1}}
    assert target_input({"Input": '{"a": 1}'}, event) == {"a": 1}
    assert target_input({"InputPath": "$.detail"}, event) == {"x": 1}
    assert target_input({}, event) is event


# --- status events -------------------------------------------------------------------------------


class FakeSfn:
    def __init__(self) -> None:
        self.executions: dict[str, dict] = {}

    def list_state_machines(self, **kw):
        return {"stateMachines": [{"stateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:F"}]}

    def list_executions(self, stateMachineArn, **kw):
        return {"executions": [{"executionArn": a, "status": e["status"]} for a, e in self.executions.items()]}

    def describe_execution(self, executionArn):
        return self.executions[executionArn]


def execution_of(name: str, status: str, **extra) -> dict:
    return {
        "executionArn": f"arn:aws:states:us-east-1:1:execution:F:{name}",
        "stateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:F",
        "name": name,
        "status": status,
        "startDate": datetime(2026, 11, 24, 11, tzinfo=UTC),
        "input": '{"Parameters": "{}"}',
        **extra,
    }


def test_each_status_is_reported_once_and_running_always_first():
    sfn, put = FakeSfn(), []
    watcher = ExecutionWatcher(sfn, lambda entries: put.extend(entries))
    sfn.executions["a"] = execution_of("a", "RUNNING")
    assert watcher.poll() == 1 and watcher.poll() == 0
    sfn.executions["a"] = execution_of("a", "FAILED", stopDate=datetime(2026, 11, 24, 11, 5, tzinfo=UTC),
                                       error="States.TaskFailed", cause="{}")
    # An execution first seen finished: its RUNNING is reported before its end.
    sfn.executions["b"] = execution_of("b", "SUCCEEDED", output="{}")
    assert watcher.poll() == 3 and watcher.poll() == 0
    seen = [(json.loads(e["Detail"])["name"], json.loads(e["Detail"])["status"]) for e in put]
    assert seen == [("a", "RUNNING"), ("a", "FAILED"), ("b", "RUNNING"), ("b", "SUCCEEDED")]
    watcher.mark_emitted(execution_of("c", "")["executionArn"], ["RUNNING", "SUCCEEDED"])
    sfn.executions[execution_of("c", "")["executionArn"]] = execution_of("c", "SUCCEEDED")
    assert watcher.poll() == 0


def test_status_events_are_what_the_recorder_parses():
    entry = execution_status_event(execution_of("a", "FAILED", stopDate=datetime(2026, 11, 24, 11, 5, tzinfo=UTC),
                                                error="States.TaskFailed", cause="why"))
    assert entry["Source"] == "aws.states" and entry["DetailType"] == "Step Functions Execution Status Change"
    parsed = ExecutionStatusChange.model_validate(json.loads(entry["Detail"]))
    assert parsed.status == "FAILED" and parsed.error == "States.TaskFailed" and parsed.cause == "why"
    assert parsed.startDate == int(datetime(2026, 11, 24, 11, tzinfo=UTC).timestamp() * 1000)
    job = {"jobId": "j", "jobName": "F-start", "status": "FAILED", "statusReason": "Essential container in task exited",
           "container": {"command": ["flowplane", "task"], "exitCode": 137, "environment": [{"name": "A", "value": "1"}]}}
    parsed_job = JobStateChange.model_validate(json.loads(batch_job_event(job, "arn:job")["Detail"]))
    assert parsed_job.container.exitCode == 137 and parsed_job.env() == {"A": "1"}


# --- moto fixes ------------------------------------------------------------------------------------


def test_every_moto_fix_undoes_exactly():
    import botocore.session
    import jsonpath_ng.ext
    from moto.batch.models import BatchBackend, Job
    from moto.dynamodb.models import DynamoDBBackend
    from moto.stepfunctions.parser.asl.utils import json_path
    from moto.dynamodb.models.table import Table
    from moto.events.models import Rule
    from moto.events.utils import EventTemplateParser
    from moto.stepfunctions.models import StateMachineInstance
    import moto.backends
    from moto.core.serialize import BaseJSONSerializer
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
    )
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    watched = [(moto.backends, "list_of_moto_modules"), (BaseJSONSerializer, "_serialize_type_map"),(Job, "_get_container_property"), (Rule, "send_to_targets"), (BatchBackend, "describe_jobs"),
               (StateMachineInstance, "__deepcopy__"), (EventTemplateParser, "DEFAULT_EVENT_INPUT_TEMPLATE"),
               (DynamoDBBackend, "transact_write_items"), (Table, "__deepcopy__"), (Table, "query"),
               (Table, "sorted_items"), (DynamoDBBackend, "update_item"), (botocore.session, "create_loader"),
               (jsonpath_ng.ext, "parse"), (json_path, "parse"), (DistributedIterationComponent, "_map_run"),
               (ExecutionWorker, "stop")]
    before = [cls.__dict__.get(name) for cls, name in watched]
    undos = [moto_patches.install_batch_sync_fix(), moto_patches.install_second_execution_fix(),
             moto_patches.install_batch_environment_fix(), moto_patches.install_events_fixes(),
             moto_patches.install_transact_fix(), moto_patches.install_query_fix(),
             moto_patches.install_shared_botocore_loader(), moto_patches.install_jsonpath_cache(),
             moto_patches.install_dynamodb_serializer_fix(), moto_patches.install_module_list_cache(),
             moto_patches.install_distributed_map_failures(), moto_patches.install_early_stop_fix()]
    assert all(now is not then for now, then in zip([cls.__dict__.get(name) for cls, name in watched], before)
               if now is not None), "a patch did not change what it patches"
    assert [cls.__dict__.get(name) for cls, name in watched] != before
    assert '"account": "<account>"' in EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    for undo in reversed(undos):
        undo()
    assert [cls.__dict__.get(name) for cls, name in watched] == before


def test_moto_module_list_is_read_once_and_is_moto_s_own(monkeypatch):
    import moto.backends

    listed = []
    listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: listed.append(path) or listdir(path))
    theirs = list(moto.backends.list_of_moto_modules())
    undo = moto_patches.install_module_list_cache()
    try:
        listed.clear()
        assert list(moto.backends.list_of_moto_modules()) == theirs and "dynamodb" in theirs
        assert list(moto.backends.list_of_moto_modules()) == theirs
        assert len(listed) == 1
    finally:
        undo()


# --- choosing the control plane ------------------------------------------------------------------------


def test_a_dead_planes_url_file_is_ignored(tmp_path):
    (tmp_path / "plane.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": 2 ** 22 + 12345}))
    assert read_url_file(tmp_path) is None
    (tmp_path / "plane.json").write_text("not json")
    assert read_url_file(tmp_path) is None
    (tmp_path / "plane.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": os.getpid()}))
    assert read_url_file(tmp_path)["url"] == "http://127.0.0.1:9"
    # Alive but not answering is not running.
    assert discover.running_url(str(tmp_path)) is None


def test_the_embedded_plane_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("FLOWPLANE_EMBEDDED", "0")
    with pytest.raises(ConfigError, match="FLOWPLANE_API_URL .* FLOWPLANE_EMBEDDED=0"):
        discover.embedded_url()


def test_stop_signals_only_a_plane_never_another_live_process(tmp_path):
    # A URL file naming this very process (as the discovery tests write) or any other live
    # process that is not `flowplane local` must not be killed by `stop` (nor by the suite's
    # end-of-session safety net, which calls it).
    from flowplane.local import service

    (tmp_path / "plane.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": os.getpid()}))
    assert service.stop(tmp_path, timeout=1) is None
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "plane.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": other.pid}))
        assert service.stop(tmp_path, timeout=1) is None
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
