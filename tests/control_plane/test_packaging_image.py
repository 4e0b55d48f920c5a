"""The task image (Dockerfile): what `docker build` would install, checked without Docker.

The build context is what .dockerignore lets through; the Dockerfile pip-installs
it. Here the same context is installed with pip into a folder and the task entry
point is run from there, away from the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _docker_pattern(pattern: str) -> "re.Pattern[str]":
    """A .dockerignore pattern as Docker reads it: `**` any directories (even none), `*` and
    `?` within one path element."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def _context(dest: Path) -> Path:
    """The build context after .dockerignore: the last rule matching a path or one of its
    folders decides; `!` lets it back in."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, _docker_pattern(line.lstrip("!").strip("/"))))
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        if path.is_dir() or rel.startswith((".git/", ".venv/", "node_modules/")):
            continue
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        keep = True
        for negate, regex in rules:
            if any(regex.match(p) for p in prefixes):
                keep = negate
        if keep:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / rel)
    return dest


def test_the_dockerfile_installs_only_the_sdk_and_runs_as_a_user():
    ops = _instructions()
    assert ops[0][0] == "FROM" and re.match(r"python:3\.11[-.]", ops[0][1])  # the Lambda's and the venv's Python
    copies = [rest for op, rest in ops if op == "COPY"]
    assert all(src.split()[0] in ("pyproject.toml", "flowplane") for src in copies)
    assert any(op == "RUN" and "pip install /tmp/flowplane-src" in rest for op, rest in ops)
    assert not any("requirements" in rest for _, rest in ops)  # no control plane or test dependencies
    users = [rest for op, rest in ops if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert "PYTHONUNBUFFERED=1" in DOCKERFILE


def test_the_build_context_holds_the_sdk_and_nothing_of_the_control_plane(tmp_path):
    context = _context(tmp_path / "ctx")
    files = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    assert {"pyproject.toml", "README.md", "flowplane/task/command.py", "flowplane/datastore/storage.py"} <= files
    assert not any(f.startswith(("chalicelib/", "tests/", "app.py", ".chalice/", "infra/", "vendor/")) for f in files)
    assert not any("__pycache__" in f for f in files)


@pytest.mark.slow
def test_what_the_image_installs_runs_the_task_entry_point(tmp_path):
    context = _context(tmp_path / "ctx")
    target = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(context)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "bin" / "flowplane").is_file()
    installed = {p.relative_to(target).as_posix() for p in (target / "flowplane").rglob("*.py")}
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "flowplane").rglob("*.py")}
    assert installed == source
    # Run from elsewhere, with the installed copy first: the entry point the state machines call.
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = "import flowplane, flowplane.task.command, flowplane.cli; print(flowplane.__file__); flowplane.cli.main(['--help'])"
    r = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0].startswith(str(target)) and "task" in r.stdout
