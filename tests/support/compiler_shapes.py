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

from tests.support.flow_sources import (
    BRANCH_OF_TWO_STEPS,
    FOREACH,
    FOREACH_IN_BRANCH,
    NESTED_FOREACH,
    SPLIT3,
    SPLIT_IN_FOREACH,
    SPLIT_IN_SPLIT,
    START_END,
    flow_class,
    flow_source,
)

# Realistic (long) names, so byte budgets are measured on what a stage really holds.
REGION = "eu-west-1"
ACCOUNT = "123456789012"
LONG_SETTINGS = dict(
    job_queue=f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/flowplane-production-default-queue",
    job_definition=f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/flowplane-production-task:137",
    datastore_root=f"s3://flowplane-production-datastore-{ACCOUNT}-{REGION}/datastore",
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


def linear_source(n_steps: int, cls: str = "LongFlow") -> str:
    """start -> s1 -> ... -> end, `n_steps` steps in all."""
    names = ["start", *[f"s{i}" for i in range(1, n_steps - 1)], "end"]
    steps = [f"@step\ndef {here}(self):\n    self.next(self.{nxt})\n" for here, nxt in zip(names, names[1:])]
    steps.append("@step\ndef end(self):\n    pass\n")
    return flow_source(flow_class("\n".join(steps), cls))


def shape_source(steps: str, cls: str, head: str = "") -> str:
    return flow_source(flow_class(steps, cls, head=head))


SHAPES = [
    Shape(
        "linear2",
        shape_source(START_END, "TwoStepFlow", head='alpha = Parameter("alpha", default=0.01)\n\n'),
        jobs={"start": 1, "end": 1},
    ),
    Shape(
        "split2",
        shape_source(BRANCH_OF_TWO_STEPS, "SplitFlow"),
        jobs={"start": 1, "a": 1, "a2": 1, "b": 1, "join": 1, "end": 1},
    ),
    Shape(
        "split3",
        shape_source(SPLIT3, "ThreeWayFlow"),
        jobs={"start": 1, "x": 1, "y": 1, "z": 1, "join": 1, "end": 1},
    ),
    Shape(
        "foreach",
        shape_source(FOREACH, "FanFlow"),
        cardinalities={("start", "1"): 4},
        jobs={"start": 1, "body": 4, "body2": 4, "join": 1, "end": 1},
        max_workers=3,
    ),
    Shape(
        "nested_foreach",
        shape_source(NESTED_FOREACH, "NestedFlow"),
        cardinalities={("start", "1"): 3, ("middle", "1.0"): 2, ("middle", "1.1"): 2, ("middle", "1.2"): 2},
        jobs={"start": 1, "middle": 3, "leaf": 6, "inner_join": 3, "outer_join": 1, "end": 1},
    ),
    Shape(
        "foreach_in_branch",
        shape_source(FOREACH_IN_BRANCH, "BranchFanFlow"),
        cardinalities={("fan", "1"): 5},
        jobs={"start": 1, "fan": 1, "each": 5, "fan_join": 1, "plain": 1, "join": 1, "end": 1},
    ),
    Shape(
        "split_in_foreach",
        shape_source(SPLIT_IN_FOREACH, "ForeachSplitFlow"),
        cardinalities={("start", "1"): 2},
        jobs={"start": 1, "each": 2, "left": 2, "right": 2, "each_join": 2, "join": 1, "end": 1},
    ),
    Shape(
        "split_in_split",
        shape_source(SPLIT_IN_SPLIT, "DeepSplitFlow"),
        jobs={"start": 1, "a": 1, "a1": 1, "a2": 1, "a_join": 1, "b": 1, "join": 1, "end": 1},
    ),
    Shape(
        "decorated",
        flow_source(
            '''class DecoratedFlow(FlowSpec):
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
'''
        ),
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
    # Imported here: bench/ imports this module for LONG_SETTINGS and must not need ../shared.
    from tests.support.shared_flows import SHARED_FLOWS

    return manifest_for((SHARED_FLOWS / filename).read_text(), filename, max_workers)
