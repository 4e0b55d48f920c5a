"""`Config` and `config_expr`: read on the client, frozen into the run or deployment, used in decorators."""

from __future__ import annotations

import json
import pickle
import re

import pytest

from flowplane.config import Config, ConfigError, ConfigValue, config_expr, resolve_configs
from flowplane.config_eval import ConfigExprError, evaluate, parse_expr
from flowplane.context import FlowContext
from flowplane.graph import read_source_flow
from flowplane.lint import lint
from flowplane.manifest import DeployOptions
from flowplane.package import build_package, manifest_for
from flowplane.parameters import DeployTimeContext
from tests.support.control_plane import load_flow_class
from tests.support.feature_flows import CONFIG_FLOW as FLOW
from tests.support.feature_flows import CONFIG_VALUES as VALUES
from tests.support.local_runs import USER, RunView, run_cli, write_flow

pytestmark = pytest.mark.aws


@pytest.fixture()
def flow(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWPLANE_USER", USER)
    path = write_flow(tmp_path, "cfg_flow", FLOW)
    (tmp_path / "config.json").write_text(json.dumps(VALUES))  # relative default: where the command runs
    return path


# --- expressions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("cfg.cpu", 2),
        ("cfg['nested'].k[1]", 2),
        ("cfg.memory_gb * 1024 + 1", 3073),
        ("cfg.mode.upper()", "FAST"),
        ("max(cfg.cpu, 4) if cfg.mode == 'fast' else 1", 4),
        ("cfg.get('missing', 7)", 7),
        ("f'{cfg.mode}-{cfg.cpu}'", "fast-2"),
        ("config_expr('cfg.cpu') * 2", 4),
    ],
)
def test_config_expressions_evaluate_without_running_code(text, value):
    assert evaluate(parse_expr(text), {"cfg": VALUES}) == value


@pytest.mark.parametrize(
    "text, says",
    [
        ("__import__('os').system('true')", "calling system() is not allowed"),
        ("__import__('os')", "calling __import__() is not allowed"),
        ("cfg.mode.__class__", "a str has no member '__class__'"),
        ("open('x')", "calling open() is not allowed"),
        ("other.cpu", "'other' is not a config of this flow (known: cfg)"),
        ("cfg.nope", "no 'nope' in the config"),
        ("[x for x in cfg]", "ListComp is not allowed"),
        ("cfg.cpu / 0", "failed: division by zero"),
    ],
)
def test_anything_else_is_refused_by_name(text, says):
    with pytest.raises(ConfigExprError, match=re.escape(says)):
        evaluate(parse_expr(text), {"cfg": VALUES})


def test_config_expr_with_a_syntax_error_fails_where_it_is_written():
    with pytest.raises(ConfigExprError, match="is not a Python expression"):
        config_expr("cfg.")


# --- values --------------------------------------------------------------------------


def test_a_config_value_reads_by_key_and_attribute_and_is_read_only():
    v = ConfigValue({"a": {"b": [1, {"c": 2}]}})
    assert v.a.b[1].c == 2 and v["a"]["b"][0] == 1
    for change in (lambda: v.__setitem__("a", 1), lambda: setattr(v, "a", 1), lambda: v.update(a=1), lambda: v.a.pop("b")):
        with pytest.raises(TypeError, match="a config is read-only"):
            change()
    with pytest.raises(AttributeError, match="no key 'z'"):
        v.z  # noqa: B018
    assert pickle.loads(pickle.dumps(v)) == v and v.to_dict() == {"a": {"b": [1, {"c": 2}]}}


def _ctx(name: str) -> DeployTimeContext:
    return DeployTimeContext(flow_name="F", parameter_name=name, user_name="u")


def test_values_come_from_the_option_then_the_default_file_then_default_value(tmp_path):
    (tmp_path / "d.json").write_text('{"x": 1}')
    (tmp_path / "o.json").write_text('{"x": 2}')
    a = Config("a", default=str(tmp_path / "d.json"))
    b = Config("b", default_value='{"y": 1}')
    c = Config("c", default=lambda ctx: str(tmp_path / "o.json"))
    d = Config("d")
    p = Config("p", default_value="just text", plain=True)
    q = Config("q", default_value="k=v", parser=lambda s: dict([s.split("=")]))
    configs = [a, b, c, d, p, q]
    got = resolve_configs(configs, {}, _ctx)
    assert got == {"a": {"x": 1}, "b": {"y": 1}, "c": {"x": 2}, "d": None, "p": "just text", "q": {"k": "v"}}
    given = {"a": ("file", str(tmp_path / "o.json")), "b": ("value", '{"y": 3}')}
    assert resolve_configs(configs, given, _ctx)["a"] == {"x": 2}
    assert resolve_configs(configs, given, _ctx)["b"] == {"y": 3}


def test_bad_configs_are_named_all_at_once(tmp_path):
    (tmp_path / "bad.json").write_text("{'single': 'quotes'}")
    (tmp_path / "list.json").write_text("[1, 2]")
    configs = [
        Config("a", default=str(tmp_path / "bad.json")),
        Config("b", default=str(tmp_path / "none.json")),
        Config("c", default=str(tmp_path / "list.json")),
        Config("d", required=True),
    ]
    with pytest.raises(ConfigError) as e:
        resolve_configs(configs, {}, _ctx)
    text = str(e.value)
    assert "config 'a' (from " in text and "is not valid JSON: Expecting property name" in text
    assert "config 'b': the default configuration file" in text and "could not be read (No such file" in text
    assert "config 'c' (from " in text and "must be a JSON object (or declare plain=True), got list" in text
    assert "config 'd' is required: give --config d PATH or --config-value d JSON" in text
    with pytest.raises(ConfigError, match="unknown config\\(s\\) 'zz'; the flow's configs are: a, b, c, d"):
        resolve_configs(configs, {"zz": ("value", "{}")}, _ctx)
    with pytest.raises(ConfigError, match="give default \\(a path\\) or default_value, not both"):
        Config("x", default="a.json", default_value={})


# --- the graph, read from source with the values -------------------------------------


def test_the_source_reads_decorators_with_the_config_values():
    src = read_source_flow(FLOW, "flow.py", configs={"cfg": VALUES, "extra": {"greeting": "hi"}})
    start = src.graph["start"]
    assert start.decorator("resources").cpu == 2 and start.decorator("resources").memory == 3072
    assert start.decorator("environment").vars == {"MODE": "FAST"}
    assert start.decorator("retry").times == 1
    assert [(c.name, c.attribute) for c in src.configs] == [("cfg", "cfg"), ("extra", "extra")]
    assert lint(src) == []
    # Before the values are known (a command's --help) the arguments are left out, silently.
    unknown = read_source_flow(FLOW, "flow.py")
    assert unknown.problems == [] and unknown.graph["start"].decorator("resources").cpu == 1


def test_a_config_missing_what_a_decorator_needs_fails_lint_naming_the_step():
    src = read_source_flow(FLOW, "flow.py", configs={"cfg": {**VALUES, "cpu": "many"}, "extra": {}})
    messages = [str(e) for e in lint(src)]
    assert any("step 'start': @resources: cpu: Input should be a valid number" in m for m in messages), messages
    src = read_source_flow(FLOW, "flow.py", configs={"cfg": {"cpu": 1}, "extra": {}})
    messages = [str(e) for e in lint(src)]
    assert any("@resources: argument 'memory': 'cfg.memory_gb': no 'memory_gb' in the config" in m for m in messages)


def test_a_config_and_a_parameter_may_not_share_a_name():
    source = FLOW.replace('    extra = Config("extra"', '    p = Parameter("cfg", default=1)\n    extra = Config("extra"')
    source = source.replace("import Config,", "import Config, Parameter,")
    messages = [str(e) for e in lint(read_source_flow(source, "f.py", configs={"cfg": VALUES, "extra": {}}))]
    assert any("config 'cfg': a parameter or config of that name is declared" in m for m in messages), messages


# --- local runs ------------------------------------------------------------------------


@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
def test_a_run_reads_the_config_once_and_every_step_sees_it(flow, tmp_path, launcher):
    root = tmp_path / "ds"
    proc = run_cli(flow, root, tmp_path, "run", FLOWPLANE_TASK_LAUNCHER=launcher)
    assert proc.returncode == 0, proc.stderr
    run = RunView.only(root, "CfgFlow")
    assert run.data("start")["seen"] == (2, "fast", "hi", "FAST")
    assert run.data("start")["part"] == {"k": [1, 2]}
    assert "a config is read-only" in run.data("end")["refused"]


def test_config_options_override_the_default(flow, tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({**VALUES, "mode": "slow"}))
    proc = run_cli(
        flow, tmp_path / "ds", tmp_path, "--config", "cfg", "other.json", "--config-value", "extra", '{"greeting": "yo"}', "run"
    )
    assert proc.returncode == 0, proc.stderr
    assert RunView.only(tmp_path / "ds", "CfgFlow").data("start")["seen"] == (2, "slow", "yo", "SLOW")


@pytest.mark.parametrize(
    "args, says",
    [
        (["--config", "cfg", "bad.json"], "config 'cfg' (from bad.json) is not valid JSON: Expecting value at line 1 column 1"),
        (["--config", "cfg", "nope.json"], "config 'cfg': the configuration file 'nope.json' could not be read"),
        (["--config-value", "nosuch", "{}"], "unknown config(s) 'nosuch'; the flow's configs are: cfg, extra"),
        (["--config-value", "cfg", "{}"], "@resources: argument 'cpu': 'cfg.cpu': no 'cpu' in the config"),
    ],
)
def test_bad_configs_are_refused_before_anything_runs(flow, tmp_path, args, says):
    (tmp_path / "bad.json").write_text("not json")
    proc = run_cli(flow, tmp_path / "ds", tmp_path, *args, "run")
    assert proc.returncode != 0
    assert says in proc.stderr, proc.stderr
    assert not (tmp_path / "ds" / "CfgFlow").exists()


# --- production: frozen into the manifest, checked by the control plane ----------------------


def _manifest(flow_path, configs):
    cls = load_flow_class(flow_path, "CfgFlow")
    ctx = FlowContext.for_class(cls, configs=configs)
    ctx.user = "alice"
    return manifest_for(ctx, DeployOptions())


def test_create_freezes_the_configs_into_the_manifest_and_the_compiled_machine(control_plane, flow):
    configs = {"cfg": VALUES, "extra": {"greeting": "hi"}}
    manifest = _manifest(flow, configs)
    assert manifest.configs == configs and manifest.graph["start"].decorator("resources").cpu == 2
    package = build_package(str(flow.parent), manifest)
    r = control_plane.client.http.post("/compile", headers={"content-type": "application/gzip"}, body=package.data)
    assert r.status_code == 200, r.json_body
    text = json.dumps(r.json_body["state_machine"])
    assert '{"Type": "VCPU", "Value": "2"}' in text and '{"Type": "MEMORY", "Value": "3072"}' in text


def test_the_control_plane_refuses_a_manifest_whose_configs_disagree_with_the_source(control_plane, flow):
    configs = {"cfg": VALUES, "extra": {"greeting": "hi"}}
    good = _manifest(flow, configs)
    for manifest, says in [
        (good.model_copy(update={"configs": {"extra": {}}}), "config 'cfg' is in the source but has no value in the manifest"),
        (good.model_copy(update={"configs": {**configs, "cfg": {**VALUES, "cpu": 4}}}), "step 'start' has decorators"),
    ]:
        package = build_package(str(flow.parent), manifest)
        r = control_plane.client.http.post("/compile", headers={"content-type": "application/gzip"}, body=package.data)
        assert r.status_code == 400 and says in json.dumps(r.json_body), r.json_body


def test_create_with_a_config_that_is_not_json_deploys_nothing(flow, tmp_path):
    (tmp_path / "bad.json").write_text("{")
    proc = run_cli(flow, tmp_path / "ds", tmp_path, "--config", "cfg", "bad.json", "step-functions", "create",
                   FLOWPLANE_API_URL="http://127.0.0.1:9/never-called")
    assert proc.returncode != 0
    assert "config 'cfg' (from bad.json) is not valid JSON" in proc.stderr and "nothing ran or deployed" in proc.stderr
