"""The Batch job's contract between the compiler and the task is defined once, in flowplane/job.py.

The compiler writes the job's environment and its retries; the task reads the
same variables and counts its attempts the same way. Both import the names and
the arithmetic from the one leaf module: no literal of a job variable elsewhere,
no task runtime in the Lambda, no attempt arithmetic of the compiler's own.
"""

from __future__ import annotations

import ast
from pathlib import Path

from flowplane import job
from tests.support.paths import ROOT

SOURCES = ("flowplane", "chalicelib", "bench", "app.py")
JOB_MODULE = Path("flowplane/job.py")

# The job's variables, by name.
VARIABLES = {value: name for name, value in vars(job).items() if name.isupper() and isinstance(value, str)}

# Literals that are not the job's variable though spelled alike, or not yet moved, and why.
ELSEWHERE = {
    # The control plane's own setting (chalicelib/settings.py reads Settings.event_bus from it).
    (Path("flowplane/local/plane.py"), "FLOWPLANE_EVENT_BUS"),
}


def python_files() -> list[Path]:
    found: list[Path] = []
    for name in SOURCES:
        path = ROOT / name
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return [p.relative_to(ROOT) for p in found]


def parsed(path: Path) -> ast.Module:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"), str(path))


def test_the_contract_names_the_jobs_variables():
    assert {"FLOWPLANE_RUN_ID", "FLOWPLANE_EXECUTION_INPUT", "FLOWPLANE_PACKAGE_URL", "FLOWPLANE_PRODUCTION_TOKEN",
            "FLOWPLANE_EVENT_BUS", "FLOWPLANE_FOREACH_TABLE", "FLOWPLANE_JOIN_INPUTS_TABLE",
            "AWS_BATCH_JOB_ID"} <= set(VARIABLES)


def test_job_variable_names_are_literals_only_in_the_contract():
    found = set()
    for path in python_files():
        if path == JOB_MODULE:
            continue
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Constant) and node.value in VARIABLES:
                found.add((path, node.value, node.lineno))
    stray = sorted(f"{p}:{line}: {value}" for p, value, line in found if (p, value) not in ELSEWHERE)
    assert not stray, "import the name from flowplane/job.py:\n" + "\n".join(stray)


def test_the_contract_is_a_leaf():
    imports = [n for n in ast.walk(parsed(JOB_MODULE)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [ast.unparse(n) for n in imports] == ["from __future__ import annotations"]


def test_the_compiler_imports_no_task_runtime_and_counts_no_attempts_of_its_own():
    for path in python_files():
        if path.parts[0] != "chalicelib":
            continue
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                names = []
            runtime = [n for n in names if n == "flowplane.task" or n.startswith(("flowplane.task.", "flowplane.task_"))]
            assert not runtime, f"{path}:{node.lineno} imports the task runtime ({runtime[0]})"
            # The attempt arithmetic is job.attempts_before_failing; the constant stays inside it.
            named = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
            assert named != "FALLBACK_ATTEMPTS", f"{path}:{node.lineno} counts @catch's attempts itself"
