"""The Manifest -> ASL compiler: shape, budgets, decorators, validation, bad input.

Execution of the same definitions by the in-process AWS is in test_compiler_exec.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from pydantic import ValidationError

from chalicelib.compiler import CompileError, CompileSettings, compile_state_machine, job_name
from chalicelib.compiler.asl import BATCH_THROTTLE_RETRY, CONTEXT_STATE, JOB_FAILED
from chalicelib.compiler.foreach import item_key_expr
from flowplane.foreach_items import items_key
from flowplane.job import FALLBACK_ATTEMPTS
from tests.support.asl_validator import invalid_definitions
from tests.support.compiler_shapes import (
    LONG_SETTINGS,
    PACKAGE_URL,
    SHAPES,
    SHAPES_BY_NAME,
    SHARED,
    linear_source,
    manifest_for,
    shape_manifest,
    shared_manifest,
)
from tests.support.paths import ROOT

SETTINGS = CompileSettings(**LONG_SETTINGS)
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,127}$")


def compile_(manifest, settings=SETTINGS, package_url=PACKAGE_URL):
    return compile_state_machine(manifest, package_url, settings)


def size(obj) -> int:
    return len(json.dumps(obj, separators=(",", ":")).encode())


def walk(states: dict):
    """(name, state) for every state, inside Parallel branches and Map iterations too."""
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from walk(branch["States"])
        if "ItemProcessor" in state:
            yield from walk(state["ItemProcessor"]["States"])


def batch_tasks(definition: dict) -> dict[str, dict]:
    return {n: s for n, s in walk(definition["States"]) if s.get("Resource", "").startswith("arn:aws:states:::batch")}


def eval_format(expr: str, values: dict[str, str]) -> str:
    """Evaluate the `States.Format('...', path, ...)` calls the compiler writes (no nesting)."""
    m = re.fullmatch(r"States\.Format\('((?:[^'\\]|\\.)*)'((?:,[^,()]+)*)\)", expr)
    assert m, expr
    template, args = m.group(1), [a for a in m.group(2).split(",") if a]
    pieces = re.split(r"(?<!\\)\{\}", template)
    assert len(pieces) == len(args) + 1, expr
    out = pieces[0]
    for arg, piece in zip(args, pieces[1:]):
        out += values[arg] + piece
    return re.sub(r"\\(.)", r"\1", out)


def all_definitions() -> dict[str, dict]:
    defs = {f"shared:{f}": compile_(shared_manifest(f, SHARED[f].max_workers)) for f in SHARED}
    defs.update({f"shape:{s.name}": compile_(shape_manifest(s)) for s in SHAPES})
    defs["linear500"] = compile_(manifest_for(linear_source(500)))
    return defs


@pytest.fixture(scope="module")
def definitions() -> dict[str, dict]:
    return all_definitions()


# --- validity and budgets -----------------------------------------------------------


def test_every_definition_passes_asl_validator(definitions, tmp_path):
    assert len(definitions) == len(SHARED) + len(SHAPES) + 1
    assert invalid_definitions(definitions, tmp_path) == {}


def test_asl_validator_does_reject_what_aws_would_accept_but_it_does_not(tmp_path):
    # The check above means something: the validator runs and rejects, e.g., the
    # JSONPath union in OutputPath that Metaflow's state machines use.
    bad = {"StartAt": "a", "States": {"a": {"Type": "Pass", "OutputPath": "$.['x', 'y']", "End": True}}}
    assert list(invalid_definitions({"union": bad}, tmp_path)) == ["union"]


def test_every_task_state_is_at_most_1kb(definitions):
    # Containers (Parallel, Map) hold their branches; every other state is measured.
    sizes = {
        (name, step): size(state)
        for name, d in definitions.items()
        for step, state in walk(d["States"])
        if state["Type"] not in ("Parallel", "Map")
    }
    assert len(sizes) > 500
    assert {k: v for k, v in sizes.items() if v > 1024} == {}
    # The step with all four decorators (retry, catch, timeout, resources) is the largest
    # task (the shared context state grows with the flow's name and URLs instead).
    tasks = {k: v for k, v in sizes.items() if k[1] != CONTEXT_STATE}
    assert max(tasks, key=tasks.get) == ("shape:decorated", "start")


def test_500_step_linear_flow_fits_the_1mb_definition_limit(definitions):
    d = definitions["linear500"]
    assert len(batch_tasks(d)) == 500
    assert size(d) < 1024 * 1024
    # Roughly linear in the steps: nothing is repeated per pair of steps.
    assert size(d) < 500 * 600


def test_compiling_a_1000_step_graph_takes_under_100ms():
    manifest = manifest_for(linear_source(1000))
    best = min(_timed(lambda: compile_(manifest)) for _ in range(5))
    assert best < 0.100, f"best of 5: {best * 1000:.1f} ms"


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def test_compiler_makes_no_aws_calls_and_imports_no_sdk():
    code = (
        "import sys, json\n"
        "sys.path[:0] = ['.']\n"
        "from tests.support.compiler_shapes import SHAPES, shape_manifest, LONG_SETTINGS, PACKAGE_URL\n"
        "from chalicelib.compiler import compile_state_machine, CompileSettings\n"
        "for s in SHAPES: compile_state_machine(shape_manifest(s), PACKAGE_URL, CompileSettings(**LONG_SETTINGS))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


# --- the task state ---------------------------------------------------------------


def test_foreach_flow_definition_shape():
    d = compile_(shared_manifest("foreach_flow.py", max_workers=3))
    top = d["States"]
    assert d["StartAt"] == CONTEXT_STATE
    assert list(top) == [CONTEXT_STATE, "start", "start-foreach", "join", "end"]
    assert top[CONTEXT_STATE]["Next"] == "start"
    assert top["start"]["Next"] == "start-foreach"
    mapped = top["start-foreach"]
    assert mapped["Type"] == "Map" and mapped["MaxConcurrency"] == 3 and mapped["Next"] == "join"
    # A Distributed Map reading the split's item list from the datastore's bucket.
    assert mapped["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    reader = mapped["ItemReader"]
    assert reader["Resource"] == "arn:aws:states:::s3:getObject"
    assert reader["ReaderConfig"] == {"InputType": "JSON"}
    assert reader["Parameters"]["Bucket"] == LONG_SETTINGS["datastore_root"][len("s3://"):].split("/")[0]
    # Metaflow's semantics: one failed item fails the Map (no tolerated failures), and
    # only the children's count is kept in the state data.
    assert not [k for k in mapped if k.startswith("ToleratedFailure")]
    assert mapped["ResultSelector"] == {"n.$": "States.ArrayLength($)"}
    assert [r["ErrorEquals"] for r in mapped["Retry"]] == [["States.ItemReaderFailed"]]
    assert "ItemsPath" not in mapped and "Catch" not in mapped
    assert mapped["ItemProcessor"]["StartAt"] == "square"
    assert mapped["ItemProcessor"]["States"]["square"]["End"] is True
    assert top["join"]["Next"] == "end" and top["end"]["End"] is True


def test_task_state_submits_a_batch_job_running_flowplane_task():
    d = compile_(shared_manifest("foreach_flow.py"))
    ctx = d["States"][CONTEXT_STATE]["Parameters"]["fp"]
    env = {e["Name"]: e.get("Value", e.get("Value.$")) for e in ctx["env"]}
    assert env == {
        "FLOWPLANE_RUN_ID": "States.Format('sfn-{}',$$.Execution.Name)",
        "FLOWPLANE_FLOW": "ForeachFlow",
        "FLOWPLANE_EXECUTION_INPUT": "States.JsonToString($$.Execution.Input)",
        "FLOWPLANE_PACKAGE_URL": PACKAGE_URL,
        "FLOWPLANE_DATASTORE_ROOT": LONG_SETTINGS["datastore_root"],
        "FLOWPLANE_EVENT_BUS": LONG_SETTINGS["event_bus"],
    }
    assert ctx["queue"] == LONG_SETTINGS["job_queue"] and ctx["jobdef"] == LONG_SETTINGS["job_definition"]
    # The parent's run id, for the item keys of nested foreaches: inside a child
    # execution $$.Execution.Name is the child's.
    assert ctx["run.$"] == "States.Format('sfn-{}',$$.Execution.Name)"
    tasks = batch_tasks(d)
    assert set(tasks) == {"start", "square", "join", "end"}
    for step, task in tasks.items():
        assert task["Resource"] == "arn:aws:states:::batch:submitJob.sync"
        params = task["Parameters"]
        assert params["JobName"] == f"ForeachFlow-{step}"
        assert params["JobQueue.$"] == "$.fp.queue" and params["JobDefinition.$"] == "$.fp.jobdef"
        assert params["ContainerOverrides"]["Environment.$"] == "$.fp.env"
        task_id = "$.tid" if step == "square" else "'1'"
        assert params["ContainerOverrides"]["Command.$"] == (
            f"States.Array('flowplane','task','--step','{step}','--task-id',{task_id},"
            "'--retry-count',States.Format('{}',$$.State.RetryCount))"
        )
        assert task["ResultPath"] is None
        assert task["Retry"] == [BATCH_THROTTLE_RETRY]
        assert "Catch" not in task and "TimeoutSeconds" not in task
        assert "ResourceRequirements" not in params["ContainerOverrides"]


def test_step_job_definition_override_is_used_for_that_step_only():
    jd = f"arn:aws:batch:{LONG_SETTINGS['region']}:123456789012:job-definition/gpu-image:3"
    settings = CompileSettings(**LONG_SETTINGS, step_job_definitions={"square": jd})
    tasks = batch_tasks(compile_(shared_manifest("foreach_flow.py"), settings))
    assert tasks["square"]["Parameters"]["JobDefinition"] == jd
    assert "JobDefinition.$" not in tasks["square"]["Parameters"]
    assert tasks["start"]["Parameters"]["JobDefinition.$"] == "$.fp.jobdef"


def test_job_names_match_batchs_pattern():
    for flow, step in [("ForeachFlow", "a"), ("_Hidden", "_x"), ("F", "b"), ("Flow" * 40, "step" * 10)]:
        name = job_name(flow, step)
        assert JOB_NAME_RE.match(name), name
    assert job_name("BranchFlow", "a") == "BranchFlow-a"
    assert job_name("_Hidden", "_x") == "fp_Hidden-_x"


# --- graph shapes -----------------------------------------------------------------


def test_static_split_is_a_parallel_with_one_branch_per_out_step_then_the_join():
    d = compile_(shape_manifest(SHAPES_BY_NAME["split2"]))
    par = d["States"]["start-parallel"]
    assert d["States"]["start"]["Next"] == "start-parallel"
    assert par["Type"] == "Parallel" and par["Next"] == "join" and par["ResultPath"] is None
    assert [b["StartAt"] for b in par["Branches"]] == ["a", "b"]
    a, b = (br["States"] for br in par["Branches"])
    assert a["a"]["Next"] == "a2" and a["a2"]["End"] is True and b["b"]["End"] is True
    three = compile_(shape_manifest(SHAPES_BY_NAME["split3"]))["States"]["start-parallel"]
    assert [b["StartAt"] for b in three["Branches"]] == ["x", "y", "z"]


def test_state_names_are_unique_across_the_whole_machine(definitions):
    for name, d in definitions.items():
        names = [n for n, _ in walk(d["States"])]
        assert len(names) == len(set(names)), name


def test_nested_foreach_builds_task_ids_from_the_map_items():
    d = compile_(shape_manifest(SHAPES_BY_NAME["nested_foreach"]))
    outer = d["States"]["start-foreach"]
    inner = outer["ItemProcessor"]["States"]["middle-foreach"]
    assert outer["ItemSelector"] == {"fp.$": "$.fp", "tid.$": "States.Format('1.{}',$$.Map.Item.Index)"}
    assert inner["ItemSelector"] == {"fp.$": "$.fp", "tid.$": "States.Format('{}.{}',$.tid,$$.Map.Item.Index)"}
    # Evaluated as Step Functions would for outer item "2" and inner item "1":
    outer_tid = eval_format(outer["ItemSelector"]["tid.$"], {"$$.Map.Item.Index": "2"})
    inner_tid = eval_format(inner["ItemSelector"]["tid.$"], {"$.tid": outer_tid, "$$.Map.Item.Index": "1"})
    assert (outer_tid, inner_tid) == ("1.2", "1.2.1")
    leaf = inner["ItemProcessor"]["States"]["leaf"]
    assert "'--task-id',$.tid," in leaf["Parameters"]["ContainerOverrides"]["Command.$"]
    # Joins run with the id of the split they close.
    inner_join = outer["ItemProcessor"]["States"]["inner_join"]
    assert "'--task-id',$.tid," in inner_join["Parameters"]["ContainerOverrides"]["Command.$"]
    assert "'--task-id','1'," in d["States"]["outer_join"]["Parameters"]["ContainerOverrides"]["Command.$"]


def test_item_reader_key_is_the_writers_key():
    d = compile_(shape_manifest(SHAPES_BY_NAME["nested_foreach"]))
    outer = d["States"]["start-foreach"]
    inner = outer["ItemProcessor"]["States"]["middle-foreach"]
    top_key = outer["ItemReader"]["Parameters"]["Key.$"]
    inner_key = inner["ItemReader"]["Parameters"]["Key.$"]
    # The run id comes from the context the parent evaluated, never from a child's own name.
    values = {"$.fp.run": "sfn-nightly-2026", "$.tid": "1.2"}
    prefix = LONG_SETTINGS["datastore_root"].split("/", 3)[3]
    assert eval_format(top_key, values) == f"{prefix}/" + items_key("NestedFlow", "sfn-nightly-2026", "start", "1")
    assert eval_format(inner_key, values) == f"{prefix}/" + items_key("NestedFlow", "sfn-nightly-2026", "middle", "1.2")
    assert "$$.Execution" not in top_key + inner_key
    # Nested foreaches are Distributed Maps too, started from the outer one's children.
    assert inner["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"


@pytest.mark.parametrize("prefix", ["", "deep/er"])
def test_item_key_expression_escapes_reserved_characters(prefix):
    expr = item_key_expr("Fl'ow{x}", "st\\ep", prefix, "$.fp", "$.tid")
    expected = items_key("Fl'ow{x}", "sfn-r", "st\\ep", "1.0")
    assert eval_format(expr, {"$.fp.run": "sfn-r", "$.tid": "1.0"}) == (f"{prefix}/{expected}" if prefix else expected)


def test_foreach_inside_a_branch_and_split_inside_a_foreach():
    d = compile_(shape_manifest(SHAPES_BY_NAME["foreach_in_branch"]))
    fan_branch = d["States"]["start-parallel"]["Branches"][0]["States"]
    assert list(fan_branch) == ["fan", "fan-foreach", "fan_join"]
    assert fan_branch["fan_join"]["End"] is True
    assert fan_branch["fan-foreach"]["ItemSelector"]["tid.$"] == "States.Format('1.{}',$$.Map.Item.Index)"

    d = compile_(shape_manifest(SHAPES_BY_NAME["split_in_foreach"]))
    body = d["States"]["start-foreach"]["ItemProcessor"]["States"]
    assert list(body) == ["each", "each-parallel", "each_join"]
    for branch in body["each-parallel"]["Branches"]:
        (task,) = branch["States"].values()
        assert "'--task-id',$.tid," in task["Parameters"]["ContainerOverrides"]["Command.$"]


# --- decorators ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def decorated() -> dict[str, dict]:
    d = compile_(shape_manifest(SHAPES_BY_NAME["decorated"]))
    return {**batch_tasks(d), "_states": dict(walk(d["States"]))}


def test_retry_and_catch_become_a_retrier_with_metaflows_fallback_attempts(decorated):
    start = decorated["start"]
    assert start["Retry"] == [
        BATCH_THROTTLE_RETRY,
        {"ErrorEquals": JOB_FAILED, "IntervalSeconds": 300, "MaxAttempts": 4 + FALLBACK_ATTEMPTS, "BackoffRate": 1},
    ]
    # @retry(times=0): no retrier for job failures, only Batch throttling.
    assert decorated["fit"]["Retry"] == [BATCH_THROTTLE_RETRY]
    # @catch alone: the fallback attempts, at once (1 s, the ASL minimum).
    assert decorated["score"]["Retry"][1] == {
        "ErrorEquals": JOB_FAILED,
        "IntervalSeconds": 1,
        "MaxAttempts": FALLBACK_ATTEMPTS,
        "BackoffRate": 1,
    }
    # minutes_between_retries=0 is clamped to the 1 s IntervalSeconds ASL allows.
    assert decorated["end"]["Retry"][1]["IntervalSeconds"] == 1
    assert decorated["end"]["Retry"][1]["MaxAttempts"] == 3 + FALLBACK_ATTEMPTS


def test_catch_is_retries_only_no_asl_catch(decorated):
    """A @catch step's fallback attempts end it with a task (they exit 0). An ASL Catch could
    only move past a step with no task, for the next task to refuse its missing input; as
    in Metaflow's compiler, retries alone: when even the fallbacks cannot run, the run
    fails at the step itself."""
    states = decorated["_states"]
    for name, state in states.items():
        assert "Catch" not in state, name
        assert not name.endswith("-caught"), name
    assert decorated["start"]["Next"] == "start-parallel"
    assert decorated["score"]["End"] is True and decorated["end"]["End"] is True


def test_fallback_attempts_are_the_task_runtimes(decorated):
    # The compiler and the task runtime must agree on which attempt is the last one:
    # both count with the job contract.
    from flowplane.job import attempts_before_failing

    assert FALLBACK_ATTEMPTS == 3
    assert decorated["start"]["Retry"][1]["MaxAttempts"] == attempts_before_failing(4, has_catch=True)


def test_timeout_and_resources(decorated):
    start, join = decorated["start"], decorated["join"]
    # No state timeout (it would count queueing and start-up); Batch's, with a grace
    # so the task's own @timeout alarm fires first.
    assert "TimeoutSeconds" not in start and "TimeoutSeconds" not in join
    assert start["Parameters"]["Timeout"] == {"AttemptDurationSeconds": 5400 + 60}
    assert start["Parameters"]["ContainerOverrides"]["ResourceRequirements"] == [
        {"Type": "VCPU", "Value": "4"},
        {"Type": "MEMORY", "Value": "16384"},
        {"Type": "GPU", "Value": "1"},
    ]
    assert join["Parameters"]["Timeout"] == {"AttemptDurationSeconds": 20 + 60}
    assert join["Parameters"]["ContainerOverrides"]["ResourceRequirements"] == [
        {"Type": "VCPU", "Value": "0.25"},
        {"Type": "MEMORY", "Value": "512"},
    ]


def test_with_decorators_from_deploy_options_reach_every_task():
    manifest = shared_manifest("branch_flow.py")
    from flowplane.manifest import RetrySpec

    graph = manifest.graph.with_decorators([RetrySpec(times=2, minutes_between_retries=1)])
    tasks = batch_tasks(compile_(manifest.model_copy(update={"graph": graph})))
    assert {s: t["Retry"][1]["MaxAttempts"] for s, t in tasks.items()} == {s: 2 for s in tasks}
    assert all(t["Retry"][1]["IntervalSeconds"] == 60 for t in tasks.values())


def test_minutes_between_retries_is_the_state_machines_retry_interval():
    # Only remote attempts wait (as Metaflow's Batch CLI sleeps); the local runtime does not.
    manifest = shared_manifest("branch_flow.py")
    from flowplane.manifest import RetrySpec

    graph = manifest.graph.with_decorators([RetrySpec(times=1)])
    tasks = batch_tasks(compile_(manifest.model_copy(update={"graph": graph})))
    assert all(t["Retry"][1]["IntervalSeconds"] == 120 for t in tasks.values())


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://bucket/key.tar.gz", "s3://bucket", "s3://Bad_Bucket/key", "", "s3:///key"])
def test_bad_package_url_is_refused(url):
    with pytest.raises(CompileError, match="package_url"):
        compile_(shared_manifest("parameter_flow.py"), package_url=url)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"job_queue": "arn:aws:batch:us-east-1:123456789012:job-queue/q1"}, "job_queue is in region us-east-1"),
        ({"job_queue": LONG_SETTINGS["job_definition"]}, "job_queue: expected a job-queue ARN"),
        ({"job_definition": "not a name"}, "job_definition"),
        ({"datastore_root": "/tmp/datastore"}, "datastore_root"),
        ({"foreach_table": "flowplane-foreach"}, "foreach_table"),
        ({"region": "mars-1"}, "region"),
        ({"event_bus": "bad bus"}, "event_bus"),
        ({"step_job_definitions": {"square": "arn:aws:batch:us-east-1:1:job-queue/q"}}, "step_job_definitions"),
        ({"unknown_setting": 1}, "unknown_setting"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(change, field):
    with pytest.raises(ValidationError, match=re.escape(field)):
        CompileSettings(**{**LONG_SETTINGS, **change})


def test_job_definition_override_for_an_unknown_step_is_refused():
    settings = CompileSettings(**LONG_SETTINGS, step_job_definitions={"nosuchstep": "jd:1"})
    with pytest.raises(CompileError, match="nosuchstep"):
        compile_(shared_manifest("foreach_flow.py"), settings)


def _flow(body: str) -> str:
    return "from flowplane import FlowSpec, step, catch\n\nclass BadFlow(FlowSpec):\n" + body


BAD_GRAPHS = {
    "unknown next step": (
        _flow(
            "    @step\n    def start(self):\n        self.next(self.nowhere)\n\n"
            "    @step\n    def end(self):\n        pass\n"
        ),
        "'start' goes to 'nowhere'",
    ),
    "unreachable step": (
        _flow(
            "    @step\n    def start(self):\n        self.next(self.end)\n\n"
            "    @step\n    def orphan(self):\n        self.next(self.end)\n\n"
            "    @step\n    def end(self):\n        pass\n"
        ),
        "not reachable from 'start': ['orphan']",
    ),
    "no end step": (
        _flow("    @step\n    def start(self):\n        self.next(self.start)\n"),
        "no 'end' step",
    ),
    "cycle": (
        _flow(
            "    @step\n    def start(self):\n        self.next(self.loop)\n\n"
            "    @step\n    def loop(self):\n        self.next(self.start)\n\n"
            "    @step\n    def end(self):\n        pass\n"
        ),
        "'start' is reached twice",
    ),
    "step without next": (
        _flow(
            "    @step\n    def start(self):\n        self.next(self.middle)\n\n"
            "    @step\n    def middle(self):\n        pass\n\n"
            "    @step\n    def end(self):\n        pass\n"
        ),
        "'middle' (linear) must go to exactly one step",
    ),
    "catch on foreach": (
        _flow(
            "    @catch\n    @step\n    def start(self):\n        self.xs = [1]\n"
            "        self.next(self.each, foreach='xs')\n\n"
            "    @step\n    def each(self):\n        self.next(self.join)\n\n"
            "    @step\n    def join(self, inputs):\n        self.next(self.end)\n\n"
            "    @step\n    def end(self):\n        pass\n"
        ),
        "@catch is not supported on foreach step 'start'",
    ),
    "split without join": (
        _flow(
            "    @step\n    def start(self):\n        self.next(self.a, self.b)\n\n"
            "    @step\n    def a(self):\n        self.next(self.end)\n\n"
            "    @step\n    def b(self):\n        self.next(self.end)\n\n"
            "    @step\n    def end(self):\n        pass\n"
        ),
        "split step 'start' has no join",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_GRAPHS))
def test_bad_graph_is_refused_naming_the_step(case):
    source, message = BAD_GRAPHS[case]
    manifest = manifest_for(source)
    with pytest.raises(CompileError, match=re.escape(message)):
        compile_(manifest)


def test_overlong_step_name_is_refused():
    longest = 80 - len("-parallel")  # the longest suffix a state name gets
    long_name = "x" * (longest + 1)
    manifest = manifest_for(
        _flow(
            f"    @step\n    def start(self):\n        self.next(self.{long_name})\n\n"
            f"    @step\n    def {long_name}(self):\n        self.next(self.end)\n\n"
            "    @step\n    def end(self):\n        pass\n"
        )
    )
    with pytest.raises(CompileError, match=f"step name '{long_name}' is too long"):
        compile_(manifest)
    ok = manifest_for(linear_source(3).replace("s1", "y" * longest))
    assert "y" * longest in compile_(ok)["States"]


def test_manifest_flow_name_must_match_its_graph():
    manifest = shared_manifest("parameter_flow.py").model_copy(update={"flow_name": "Other"})
    with pytest.raises(CompileError, match="flow_name 'Other'"):
        compile_(manifest)


@pytest.mark.parametrize("shape", ["decorated", "nested_foreach"])
def test_no_two_states_share_an_object(shape):
    # The deployer may edit a definition (e.g. tag a state); that must not leak into others.
    d = compile_(shape_manifest(SHAPES_BY_NAME[shape]))
    seen: dict[int, str] = {}

    def visit(obj, where):
        if isinstance(obj, (dict, list)):
            assert id(obj) not in seen, f"{where} shares an object with {seen[id(obj)]}"
            seen[id(obj)] = where
            items = obj.items() if isinstance(obj, dict) else enumerate(obj)
            for k, v in items:
                visit(v, f"{where}/{k}")

    visit(d, "")


def test_a_step_with_a_locked_environment_enters_it_and_only_that_step(tmp_path):
    """@pypi: the job's command names the step's environment (the task enters it before anything)."""
    from flowplane.graph import read_source_flow
    from flowplane.manifest import Environments, LockedEnvironment, Manifest

    graph = read_source_flow(
        "from flowplane import FlowSpec, step, pypi\n"
        "class EnvFlow(FlowSpec):\n"
        "    @pypi(packages={'tomli-w': '1.0.0'})\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n"
        "    @step\n    def end(self):\n        pass\n"
    ).graph
    env = LockedEnvironment(python="3.11", lock="tomli-w==1.0.0\n")
    manifest = Manifest(flowplane_version="0.1.0", flow_name="EnvFlow", flow_file="flow.py", graph=graph,
                        environments=Environments(locks={env.id: env}, steps={"start": env.id}))
    definition = compile_(manifest)
    start = definition["States"]["start"]["Parameters"]["ContainerOverrides"]["Command.$"]
    end = definition["States"]["end"]["Parameters"]["ContainerOverrides"]["Command.$"]
    assert start.endswith(f",'--python-env','{env.id}')")
    assert "--python-env" not in end
    assert not invalid_definitions({"EnvFlow": definition}, tmp_path)
