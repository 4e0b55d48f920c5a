"""A flow's command line (run options from its Parameters, show, check, step-functions)
and the `flowplane` console script."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from flowplane import cli as cli_module
from flowplane.cli import build_flow_cli, main, render_graph
from flowplane.task.loader import load_flow_file
from tests.support.local_runs import USER, RunView, run_cli, write_flow

PARAMS = """
import json
from datetime import datetime
from flowplane import FlowSpec, JSONType, Parameter, step


def stamp(context):
    with open("DEFAULT_CALLS", "a") as f:
        f.write(context.parameter_name + "\\n")
    return json.dumps({"who": context.user_name, "flow": context.flow_name})


class OptsFlow(FlowSpec):
    \"\"\"A flow with one parameter of every type.\"\"\"

    alpha = Parameter("alpha", help="Learning rate", default=0.01)
    count = Parameter("count", default=3)
    person = Parameter("person", help="Who", required=True)
    flag = Parameter("flag", type=bool, default=False)
    config = Parameter("config", type=JSONType, default={"a": 1})
    info = Parameter("info", type=JSONType, default=stamp)

    @step
    def start(self):
        \"\"\"Read the parameters.\"\"\"
        self.seen = (self.alpha, self.count, self.person, self.flag, self.config, self.info)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.fixture()
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWPLANE_USER", USER)
    monkeypatch.setenv("FLOWPLANE_DATASTORE_ROOT", str(tmp_path / "ds"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "ds"


def flow_cli(path: Path) -> click.Group:
    return build_flow_cli(load_flow_file(str(path)).flow_cls)


def invoke(path: Path, *args: str):
    return CliRunner(mix_stderr=False).invoke(flow_cli(path), list(args), prog_name=path.name)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--person", "x", "--alpha", "abc"], "Invalid value for '--alpha': 'abc' is not a valid float"),
        (["--person", "x", "--count", "1.5"], "Invalid value for '--count': '1.5' is not a valid int"),
        (["--person", "x", "--config", "{oops"], "Invalid value for '--config': '{oops' is not a valid json"),
        (["--person", "x", "--flag", "maybe"], "Invalid value for '--flag': 'maybe' is not a valid bool"),
        (["--person", "x", "--beta", "1"], "No such option: --beta"),
        ([], "Missing option '--person'"),
        (["--person", "x", "--max-workers", "0"], "Invalid value for '--max-workers'"),
    ],
)
def test_bad_run_options_are_usage_errors_before_anything_runs(root, tmp_path, args, message):
    res = invoke(write_flow(tmp_path, "opts_flow", PARAMS), "run", *args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr
    assert not root.exists(), "nothing may be written before the options are valid"
    assert not (tmp_path / "DEFAULT_CALLS").exists()


def test_run_converts_values_and_evaluates_deploy_time_defaults_once(root, tmp_path):
    id_file = tmp_path / "run-id"
    res = invoke(write_flow(tmp_path, "opts_ok", PARAMS), "run", "--person", "bob", "--flag", "true",
                 "--config", '{"b": [1, 2]}', "--tag", "t1", "--run-id-file", str(id_file))
    assert res.exit_code == 0, res.output + res.stderr
    run = RunView.only(root, "OptsFlow")
    assert id_file.read_text() == run.run_id
    assert run.data("start")["seen"] == (0.01, 3, "bob", True, {"b": [1, 2]}, {"who": USER, "flow": "OptsFlow"})
    assert (tmp_path / "DEFAULT_CALLS").read_text() == "info\n"
    assert run.record.tags == ["t1"]
    assert run.record.parameters["info"] == {"who": USER, "flow": "OptsFlow"}


def test_run_help_lists_parameters_with_help_and_defaults(root, tmp_path):
    res = invoke(write_flow(tmp_path, "opts_help", PARAMS), "run", "--help")
    assert res.exit_code == 0
    out = " ".join(res.output.split())
    assert "--alpha FLOAT Learning rate [env var: FLOWPLANE_RUN_ALPHA, METAFLOW_RUN_ALPHA; default: (0.01)]" in out
    assert "--count INTEGER Parameter count. [env var: FLOWPLANE_RUN_COUNT, METAFLOW_RUN_COUNT; default: (3)]" in out
    assert "--person TEXT Who [env var: FLOWPLANE_RUN_PERSON, METAFLOW_RUN_PERSON; required]" in out
    assert '--config JSON Parameter config. [env var: FLOWPLANE_RUN_CONFIG, METAFLOW_RUN_CONFIG; default: ({"a": 1})]' in out
    assert ("--info JSON Parameter info. [env var: FLOWPLANE_RUN_INFO, METAFLOW_RUN_INFO; "
            "default: (computed when the run starts)]") in out
    assert "--max-workers INTEGER RANGE" in out and "[default: 16" in out


def test_bad_with_option_is_a_usage_error(root, tmp_path):
    res = invoke(write_flow(tmp_path, "opts_with", PARAMS), "--with", "retyr", "run", "--person", "x")
    assert res.exit_code == 2
    assert "unknown decorator 'retyr'" in res.stderr
    assert not root.exists()


BRANCH = '''
from flowplane import FlowSpec, retry, step


class ShowFlow(FlowSpec):
    """Shows its graph."""

    @step
    def start(self):
        """Begin here."""
        self.items = [1, 2]
        self.next(self.each, foreach="items")

    @retry
    @step
    def each(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        """The end."""
'''


def test_show_prints_steps_docstrings_and_transitions(root, tmp_path):
    res = invoke(write_flow(tmp_path, "show_flow", BRANCH), "--with", "catch", "show")
    assert res.exit_code == 0, res.stderr
    assert res.output == (
        "Shows its graph.\n\n"
        "Step start\n    Begin here.\n    @catch\n    => each (foreach items)\n\n"
        "Step each\n    ?\n    @retry @catch\n    => join\n\n"
        "Step join\n    ?\n    @catch\n    => end\n\n"
        "Step end\n    The end.\n    @catch\n\n"
    )


BROKEN = """
from flowplane import FlowSpec, step


class BrokenFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def orphan(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_check_passes_a_good_flow_and_lists_every_error_of_a_broken_one(root, tmp_path):
    good = invoke(write_flow(tmp_path, "show_check", BRANCH), "check")
    assert good.exit_code == 0 and "The graph looks good!" in good.output
    bad = invoke(write_flow(tmp_path, "broken_flow", BROKEN), "check")
    assert bad.exit_code == 1
    assert "BrokenFlow has 1 error(s):" in bad.stderr
    assert "line 10: step 'orphan': the step cannot be reached from start" in bad.stderr


def test_run_refuses_a_flow_that_fails_lint_before_any_task(root, tmp_path):
    res = invoke(write_flow(tmp_path, "broken_run", BROKEN), "run")
    assert res.exit_code == 1
    assert "BrokenFlow has 1 error(s); nothing ran:" in res.stderr and "step 'orphan'" in res.stderr
    assert not root.exists()


def test_step_functions_is_loaded_only_when_used(root, tmp_path, monkeypatch):
    seen = {}

    @click.group()
    @click.pass_obj
    def fake(obj):
        seen["ctx"] = obj

    @fake.command()
    def hello():
        click.echo("hello from step-functions")

    monkeypatch.setitem(sys.modules, "fake_sfn_cli", types.SimpleNamespace(step_functions=fake))
    monkeypatch.setitem(cli_module.LAZY_COMMANDS, "step-functions", ("fake_sfn_cli", "step_functions"))
    res = invoke(write_flow(tmp_path, "sfn_flow", BRANCH), "--with", "retry", "step-functions", "hello")
    assert res.exit_code == 0 and res.output == "hello from step-functions\n"
    assert seen["ctx"].flow_name == "ShowFlow" and [d.kind for d in seen["ctx"].with_decorators] == ["retry"]


def test_step_functions_says_when_it_is_not_available(root, tmp_path, monkeypatch):
    monkeypatch.setitem(cli_module.LAZY_COMMANDS, "step-functions", ("no_such_module_here", "step_functions"))
    res = invoke(write_flow(tmp_path, "sfn_missing", BRANCH), "step-functions", "create", "--max-workers", "3")
    assert res.exit_code == 1
    assert "step-functions is not available in this installation (ModuleNotFoundError" in res.stderr


def test_with_catch_on_a_foreach_is_refused_before_the_run(root, tmp_path):
    res = invoke(write_flow(tmp_path, "catch_each", BRANCH), "--with", "catch", "run")
    assert res.exit_code == 1
    assert "step 'start': @catch is not supported on a foreach split step" in res.stderr
    assert not root.exists()


def test_render_graph_without_docstrings(tmp_path):
    graph = load_flow_file(str(write_flow(tmp_path, "render_flow", BROKEN))).source.graph
    assert render_graph(graph).startswith("\nStep start\n    ?\n    => end\n")


def test_flowplane_console_script(capsys):
    assert main([]) == 2
    assert "usage: flowplane COMMAND" in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert "task" in capsys.readouterr().out
    assert main(["deploy"]) == 2
    assert "unknown command 'deploy'" in capsys.readouterr().err
    assert main(["task", "--run-id", "1", "--step", "start", "--task-id", "1"]) == 1
    assert "missing --flow-file or --package" in capsys.readouterr().err


@pytest.mark.slow
def test_python_m_flowplane_task_and_the_flow_script(root, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "flowplane", "task", "--run-id", "1", "--step", "start"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1 and "missing --task-id" in proc.stderr
    proc = run_cli(write_flow(tmp_path, "script_flow", BROKEN + "\nif __name__ == '__main__':\n    BrokenFlow()\n"),
                   root, tmp_path, "show")
    assert proc.returncode == 0 and "Step orphan" in proc.stdout
