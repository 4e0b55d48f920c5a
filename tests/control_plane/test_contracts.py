"""Each contract between the control plane's modules is defined once (issue 13).

These tests read the sources (app.py, chalicelib/, flowplane/) as Python, docstrings
left out, and the templates as JSON: a key shape, an event's name, the packages'
prefix or the Step Functions role's name written a second time fails here rather
than drifting apart later.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import flowplane.event_types as event_types
from flowplane.package_key import PACKAGE_PREFIX
from tests.support.paths import ROOT

SOURCES = [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py")), *sorted((ROOT / "flowplane").rglob("*.py"))]
PLANE = [p for p in SOURCES if p.parts[len(ROOT.parts)] in ("app.py", "chalicelib")]
TEMPLATES = [ROOT / "infra" / "resources.json", *sorted((ROOT / ".chalice").glob("policy*.json"))]
# The table's key parts (chalicelib/TABLE.md): only chalicelib/keys.py may write them.
KEY_PART = re.compile(r"^(FLOW|VERSION|DEPLOYMENT|PACKAGE|STATE_MACHINE|RUN|RUNS|STATUS|TAG|STEP|TASK|ARTIFACTS)#")


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@functools.cache
def _strings(path: Path) -> list[str]:
    """The string literals of a module (the literal parts of f-strings too), docstrings left out."""
    tree = _tree(path)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        n.value for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def _where(paths: list[Path], wanted: Any) -> list[str]:
    """The modules (relative paths) with a string literal for which `wanted` is true."""
    return [str(p.relative_to(ROOT)) for p in paths if any(wanted(s) for s in _strings(p))]


def _json_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _json_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _json_strings(v)


def test_the_deployment_head_sort_key_is_defined_once():
    defined = [
        str(p.relative_to(ROOT)) for p in SOURCES
        for node in ast.walk(_tree(p))
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "HEAD_SK" for t in node.targets)
    ]
    assert defined == ["chalicelib/keys.py"]


def test_every_key_of_the_table_is_built_in_keys_py():
    assert _where(SOURCES, KEY_PART.match) == ["chalicelib/keys.py"]


def test_every_event_name_is_written_only_in_event_types():
    names = {v for k, v in vars(event_types).items() if k.isupper() and isinstance(v, str)}
    names |= set(event_types.TASK_EVENT_DETAIL_TYPES.values())
    assert {event_types.SFN_DETAIL_TYPE, event_types.TASK_EVENT_DETAIL_TYPES["started"]} <= names
    for name in sorted(names):
        assert _where(SOURCES, lambda s, n=name: s == n) == ["flowplane/event_types.py"], name


def test_a_scheduled_event_is_built_in_one_place():
    # Its detail-type is read (or imported) in one module: the one that builds the event.
    users = sorted({
        str(p.relative_to(ROOT)) for p in SOURCES for n in ast.walk(_tree(p))
        if (isinstance(n, ast.Name) and n.id == "SCHEDULED_EVENT" and isinstance(n.ctx, ast.Load))
        or (isinstance(n, ast.ImportFrom) and any(a.name == "SCHEDULED_EVENT" for a in n.names))
    })
    assert users == ["chalicelib/aws_events.py"]
    # The embedded plane's scheduler delivers that same shape.
    from chalicelib.aws_events import scheduled_event
    from flowplane.local.scheduler import scheduled_event as fired

    arn = "arn:aws:events:us-east-1:123456789012:rule/r"
    local = fired(arn, datetime(2026, 11, 24, 10, tzinfo=timezone.utc), "eu-west-1", "210987654321")
    built = scheduled_event(arn, "2026-11-24T10:00:00Z", "eu-west-1", "210987654321")
    assert {**local, "id": None} == {**built, "id": None}


def test_the_packages_prefix_is_written_once_and_the_templates_agree():
    assert _where(SOURCES, lambda s: "packages/" in s) == ["flowplane/package_key.py"]
    seen = {}
    for template in TEMPLATES:
        named = [s for s in _json_strings(json.loads(template.read_text())) if "packages/" in s]
        seen[template.name] = named
        for s in named:
            # A lifecycle rule's prefix, or an IAM resource for the objects under it.
            assert s == PACKAGE_PREFIX or s.endswith("/" + PACKAGE_PREFIX + "*"), (template.name, s)
    assert seen["resources.json"] and seen["policy-api.json"] and seen["policy-compile.json"], seen


def test_the_step_functions_role_is_named_once():
    from chalicelib.resource_names import states_role_name

    assert _where(SOURCES, lambda s: s.endswith("-states")) == ["chalicelib/resource_names.py"]
    # The stack names no role so: it passes its own role's ARN (FLOWPLANE_SFN_ROLE_ARN).
    for template in TEMPLATES:
        assert not [s for s in _json_strings(json.loads(template.read_text())) if s.endswith("-states")], template
    assert states_role_name("dev") == "flowplane-dev-states"


def test_the_control_plane_makes_its_cloudwatch_logs_client_only_in_its_adapters():
    assert _where(PLANE, lambda s: s == "logs") == ["chalicelib/aws.py"]


def test_the_recorder_flushes_its_metrics_in_one_place():
    flushing = sorted({
        str(p.relative_to(ROOT)) for p in PLANE for n in ast.walk(_tree(p))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("flush", "flush_metrics")
    })
    assert flushing == ["chalicelib/recording/telemetry.py"]
