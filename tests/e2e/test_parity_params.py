"""current.parameter_names and parameter values from the environment, as under Metaflow.

Each flow runs under Metaflow and under flowplane (import switched) and both must
report the same; the expected values are also written out, so a change in both is seen.
"""

from __future__ import annotations

import pytest

from tests.support.metaflow_twins import run_both

pytestmark = pytest.mark.slow

PARAM_NAMES = """
import json
from FRAMEWORK import FlowSpec, Parameter, current, step

class NamesFlow(FlowSpec):
    zeta = Parameter("zeta", default=1)
    alpha = Parameter("alpha", default="a")

    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        print("PARITY", json.dumps([current.step_name, current.parameter_names]))
        self.next(self.end)

    @step
    def end(self):
        print("PARITY", json.dumps([current.step_name, current.parameter_names]))

if __name__ == "__main__":
    NamesFlow()
"""


def test_current_parameter_names_lists_the_flows_parameters_in_every_step(tmp_path):
    runs = run_both(tmp_path, "names_flow", PARAM_NAMES, "run")
    for r in runs.values():
        assert r.code == 0, r.out + r.err
    expected = [["end", ["alpha", "zeta"]], ["join", ["alpha", "zeta"]]]
    assert runs["metaflow"].reported == expected
    assert runs["flowplane"].reported == expected


ENV_PARAMS = """
import json
from FRAMEWORK import FlowSpec, Parameter, step

class EnvFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)
    label = Parameter("label", required=True)
    count = Parameter("count", default=1)

    @step
    def start(self):
        print("PARITY", json.dumps({"alpha": self.alpha, "label": self.label, "count": self.count}))
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    EnvFlow()
"""


def test_metaflow_run_variables_give_parameter_values_and_the_command_line_wins(tmp_path):
    env = {"METAFLOW_RUN_LABEL": "from-env", "METAFLOW_RUN_ALPHA": "0.25", "METAFLOW_RUN_COUNT": "3"}
    runs = run_both(tmp_path, "env_flow", ENV_PARAMS, "run", "--count", "7", env=env)
    for r in runs.values():
        assert r.code == 0, r.out + r.err
    expected = [{"alpha": 0.25, "label": "from-env", "count": 7}]
    assert runs["metaflow"].reported == expected
    assert runs["flowplane"].reported == expected


def test_flowplane_run_variable_is_metaflows_twin_and_wins_over_it(tmp_path):
    from tests.support.metaflow_twins import run_twin, write_twins

    path = write_twins(tmp_path, "env_flow", ENV_PARAMS)["flowplane"]
    both = run_twin("flowplane", path, tmp_path / "ds", "run",
                    env={"FLOWPLANE_RUN_LABEL": "ours", "METAFLOW_RUN_LABEL": "theirs"})
    assert both.code == 0, both.out + both.err
    assert both.reported == [{"alpha": 0.5, "label": "ours", "count": 1}]
    bad = run_twin("flowplane", path, tmp_path / "ds", "run", env={"FLOWPLANE_RUN_LABEL": "x",
                                                                     "FLOWPLANE_RUN_COUNT": "many"})
    assert bad.code != 0 and "'many' is not a valid int" in bad.err
