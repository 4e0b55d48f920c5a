"""Run the pinned asl-validator (npm) over compiled state machines.

One node process for many definitions (each start costs ~0.8 s); on failure the
definitions are checked one by one so the message names the one at fault.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.paths import ROOT

ASL_VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"


def _run(paths: list[Path]) -> subprocess.CompletedProcess:
    args = [str(ASL_VALIDATOR)]
    for p in paths:
        args += ["--json-path", str(p)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def invalid_definitions(definitions: dict[str, dict], workdir: Path) -> dict[str, str]:
    """{name: validator output} for each definition asl-validator rejects (exit code != 0)."""
    if not ASL_VALIDATOR.exists():
        raise RuntimeError(f"{ASL_VALIDATOR} is missing: run `make install` (npm ci)")
    paths = {}
    for i, (name, definition) in enumerate(definitions.items()):
        path = workdir / f"asl-{i}.json"
        path.write_text(json.dumps(definition))
        paths[name] = path
    if _run(list(paths.values())).returncode == 0:
        return {}
    bad = {}
    for name, path in paths.items():
        proc = _run([path])
        if proc.returncode != 0:
            bad[name] = (proc.stdout + proc.stderr).strip()
    return bad
