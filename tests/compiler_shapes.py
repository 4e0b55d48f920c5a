"""Flows the compiler tests build, as source text read with the SDK's `ast` reader.

Each shape also says, worked out by hand from the graph (not from the compiler),
which foreach cardinality items a run needs and how many Batch jobs each step
runs, so the execution tests can seed DynamoDB and count jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flowplane.graph import read_source_flow
from flowplane.manifest import DeployOptions, Manifest

from shared_flows import SHARED_FLOWS  # noqa: E402

# Realistic (long) names, so byte budgets are measured on what a stage really holds.
REGION = "eu-west-1"
ACCOUNT = "123456789012"
LONG_SETTINGS = dict(
    job_queue=f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/flowplane-production-default-queue",
    job_definition=f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/flowplane-production-task:137",
    datastore_root=f"s3://flowplane-production-datastore-{ACCOUNT}-{REGION}/datastore",
    foreach_table="flowplane-production-foreach-cardinality",
    region=REGION,
    event_bus="flowplane-production-task-events",
)
PACKAGE_URL = f"s3://flowplane-production-packages-{ACCOUNT}-{REGION}/packages/{'a1' * 32}.tar.gz"


@dataclass
class Shape:
    name: str
    source: str
    # (split step, task id) -> number of splits the split task records.
    cardinalities: dict[tuple[str, str], int] = field(default_factory=dict)
    # step -> Batch jobs a successful run submits.
    jobs: dict[str, int] = field(default_factory=dict)
    max_workers: int = 100


def manifest_for(source: str, filename: str = "flow.py", max_workers: int = 100) -> Manifest:
    sf = read_source_flow(source, filename)
    assert not sf.problems, sf.problems
    return Manifest(
        flowplane_version="0.1.0",
        flow_name=sf.graph.flow_name,
        flow_file=filename,
        graph=sf.graph,
        parameters=sf.parameters,
        options=DeployOptions(max_workers=max_workers),
    )


def shape_manifest(shape: Shape) -> Manifest:
    return manifest_for(shape.source, f"{shape.name}.py", shape.max_workers)


HEADER = "from flowplane import FlowSpec, Parameter, step, retry, catch, timeout, resources\n\n"


def linear_source(n_steps: int, cls: str = "LongFlow") -> str:
    """start -> s1 -> ... -> end, `n_steps` steps in all."""
    names = ["start", *[f"s{i}" for i in range(1, n_steps - 1)], "end"]
    body = []
    for here, nxt in zip(names, names[1:]):
        body.append(f"    @step\n    def {here}(self):\n        self.next(self.{nxt})\n")
    body.append("    @step\n    def end(self):\n        pass\n")
    return HEADER + f"class {cls}(FlowSpec):\n" + "\n".join(body)


SHAPES = [
    Shape(
        "linear2",
        HEADER
        + '''class TwoStepFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.01)

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
''',
        jobs={"start": 1, "end": 1},
    ),
    Shape(
        "split2",
        HEADER
        + '''class SplitFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.a2)

    @step
    def a2(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
''',
        jobs={"start": 1, "a": 1, "a2": 1, "b": 1, "join": 1, "end": 1},
    ),
    Shape(
        "split3",
        HEADER
        + '''class ThreeWayFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.x, self.y, self.z)

    @step
    def x(self):
        self.next(self.join)

    @step
    def y(self):
        self.next(self.join)

    @step
    def z(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
''',
        jobs={"start": 1, "x": 1, "y": 1, "z": 1, "join": 1, "end": 1},
    ),
    Shape(
        "foreach",
        HEADER
        + '''class FanFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(4))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.next(self.body2)

    @step
    def body2(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
''',
        cardinalities={("start", "1"): 4},
        jobs={"start": 1, "body": 4, "body2": 4, "join": 1, "end": 1},
        max_workers=3,
    ),
    Shape(
        "nested_foreach",
        HEADER
        + '''class NestedFlow(FlowSpec):
    @step
    def start(self):
        self.outer = [1, 2, 3]
        self.next(self.middle, foreach="outer")

    @step
    def middle(self):
        self.inner = [1, 2]
        self.next(self.leaf, foreach="inner")

    @step
    def leaf(self):
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
''',
        cardinalities={("start", "1"): 3, ("middle", "1.0"): 2, ("middle", "1.1"): 2, ("middle", "1.2"): 2},
        jobs={"start": 1, "middle": 3, "leaf": 6, "inner_join": 3, "outer_join": 1, "end": 1},
    ),
    Shape(
        "foreach_in_branch",
        HEADER
        + '''class BranchFanFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.fan, self.plain)

    @step
    def fan(self):
        self.items = "abcde"
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.fan_join)

    @step
    def fan_join(self, inputs):
        self.next(self.join)

    @step
    def plain(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
''',
        cardinalities={("fan", "1"): 5},
        jobs={"start": 1, "fan": 1, "each": 5, "fan_join": 1, "plain": 1, "join": 1, "end": 1},
    ),
    Shape(
        "split_in_foreach",
        HEADER
        + '''class ForeachSplitFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.left, self.right)

    @step
    def left(self):
        self.next(self.each_join)

    @step
    def right(self):
        self.next(self.each_join)

    @step
    def each_join(self, inputs):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
''',
        cardinalities={("start", "1"): 2},
        jobs={"start": 1, "each": 2, "left": 2, "right": 2, "each_join": 2, "join": 1, "end": 1},
    ),
    Shape(
        "split_in_split",
        HEADER
        + '''class DeepSplitFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.a1, self.a2)

    @step
    def a1(self):
        self.next(self.a_join)

    @step
    def a2(self):
        self.next(self.a_join)

    @step
    def a_join(self, inputs):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
''',
        jobs={"start": 1, "a": 1, "a1": 1, "a2": 1, "a_join": 1, "b": 1, "join": 1, "end": 1},
    ),
    Shape(
        "decorated",
        HEADER
        + '''class DecoratedFlow(FlowSpec):
    @resources(cpu=4, memory=16384, gpu=1)
    @timeout(hours=1, minutes=30)
    @catch(var="failure")
    @retry(times=4, minutes_between_retries=5)
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.fit, self.score)

    @retry(times=0)
    @step
    def fit(self):
        self.next(self.join)

    @catch
    @step
    def score(self):
        self.next(self.join)

    @resources(cpu=0.25, memory=512)
    @timeout(seconds=20)
    @step
    def join(self, inputs):
        self.next(self.end)

    @catch(print_exception=False)
    @retry(minutes_between_retries=0)
    @step
    def end(self):
        pass
''',
        jobs={"start": 1, "fit": 1, "score": 1, "join": 1, "end": 1},
    ),
]

SHAPES_BY_NAME = {s.name: s for s in SHAPES}

# The shared flows, with the runs the execution tests expect (EXPECTED.md: ten squares).
SHARED = {
    "parameter_flow.py": Shape("ParameterFlow", "", jobs={"start": 1, "end": 1}),
    "deployment_info_flow.py": Shape("DeploymentInfoFlow", "", jobs={"start": 1, "end": 1}),
    "hourly_flow.py": Shape("HourlyFlow", "", jobs={"start": 1, "end": 1}),
    "branch_flow.py": Shape("BranchFlow", "", jobs={"start": 1, "a": 1, "b": 1, "join": 1, "end": 1}),
    "foreach_flow.py": Shape(
        "ForeachFlow",
        "",
        cardinalities={("start", "1"): 10},
        jobs={"start": 1, "square": 10, "join": 1, "end": 1},
        max_workers=3,
    ),
}


def shared_manifest(filename: str, max_workers: int = 100) -> Manifest:
    return manifest_for((SHARED_FLOWS / filename).read_text(), filename, max_workers)
