"""Environments on this machine: built from a lock, kept by its hash under ~/.flowplane/envs.

An environment is a virtual environment (uv, relocatable) holding exactly the lock's
packages, installed with `--require-hashes` from wheels only: nothing of the machine's
own site-packages is visible in it (`include-system-site-packages = false`). It is
built in a temporary folder and renamed into place, under a file lock, so a folder
that exists is complete, and two processes never build the same one twice. flowplane
itself is not installed in it: the task finds the running SDK through a folder
holding only a link to its package (`sdk_path`), so an environment serves whichever
flowplane of the same major.minor starts it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from ..manifest import LockedEnvironment
from .uv import run_uv

ENVS_DIR_ENV = "FLOWPLANE_ENVS_DIR"
LOCK_FILE = "requirements.lock"
INFO_FILE = "flowplane-environment.json"


class EnvironmentBuildError(RuntimeError):
    """The environment could not be built here; the message says why."""


def envs_dir() -> str:
    return os.path.abspath(os.path.expanduser(os.environ.get(ENVS_DIR_ENV) or os.path.join("~", ".flowplane", "envs")))


def env_path(env_id: str) -> str:
    return os.path.join(envs_dir(), env_id[:32])


def python_of(path: str) -> str:
    return os.path.join(path, "bin", "python")


def ready_path(env_id: str) -> Optional[str]:
    """The environment's folder when it is built here, else None."""
    path = env_path(env_id)
    return path if os.path.isfile(os.path.join(path, INFO_FILE)) else None


@contextmanager
def building(env_id: str) -> Iterator[None]:
    """Held while the environment is built or unpacked here: one process at a time."""
    os.makedirs(envs_dir(), exist_ok=True)
    with open(os.path.join(envs_dir(), f".{env_id[:32]}.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def interpreter_for(python: str) -> str:
    """The interpreter an environment for Python `python` (major.minor) is made from."""
    if python == "%d.%d" % sys.version_info[:2]:
        return sys.executable
    return python  # uv looks for it among the interpreters this machine has


def build(env_id: str, env: LockedEnvironment) -> tuple[str, bool]:
    """The environment's folder, built from its lock if it is not here yet; (path, built now)."""
    found = ready_path(env_id)
    if found:
        return found, False
    with building(env_id):
        found = ready_path(env_id)
        if found:
            return found, False
        started = time.monotonic()
        tmp = tempfile.mkdtemp(prefix=".build-", dir=envs_dir())
        try:
            made = run_uv(["venv", tmp, "--python", interpreter_for(env.python), "--relocatable", "--quiet"])
            if made.returncode != 0:
                raise EnvironmentBuildError(
                    f"cannot create a Python {env.python} environment here: {_said(made.stderr)} "
                    f"(an environment's Python must be installed on the machine or in the image)"
                )
            lock = os.path.join(tmp, LOCK_FILE)
            with open(lock, "w", encoding="utf-8") as f:
                f.write(env.lock)
            installed = run_uv([
                "pip", "sync", "--require-hashes", "--only-binary", ":all:", "--compile-bytecode", "--python", python_of(tmp), "--quiet", lock,
            ])
            if installed.returncode != 0:
                raise EnvironmentBuildError(f"cannot install the locked packages: {_said(installed.stderr)}")
            _finish(tmp, env_id, env, time.monotonic() - started)
            _replace(tmp, env_path(env_id))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return env_path(env_id), True


def _finish(tmp: str, env_id: str, env: LockedEnvironment, seconds: float) -> None:
    # Written last: its presence is what says the folder is complete.
    info = {"id": env_id, "python": env.python, "build_seconds": round(seconds, 3)}
    with open(os.path.join(tmp, INFO_FILE), "w", encoding="utf-8") as f:
        json.dump(info, f)


def _replace(tmp: str, path: str) -> None:
    if os.path.exists(path):  # a folder left by a crash before it was complete
        shutil.rmtree(path, ignore_errors=True)
    os.rename(tmp, path)


def unpack(env_id: str, env: LockedEnvironment, archive: str) -> str:
    """Unpack an environment's archive (bucket.py) into place; its folder."""
    import tarfile

    with building(env_id):
        found = ready_path(env_id)
        if found:
            return found
        tmp = tempfile.mkdtemp(prefix=".unpack-", dir=envs_dir())
        try:
            with tarfile.open(archive, "r:gz") as tar:
                # "tar": no member lands outside the folder; the interpreter links may point anywhere.
                tar.extractall(tmp, filter="tar") if hasattr(tarfile, "tar_filter") else tar.extractall(tmp)
            _repoint_interpreter(tmp, env.python)
            if not os.path.isfile(os.path.join(tmp, INFO_FILE)):
                raise EnvironmentBuildError("the archive holds no complete environment")
            _replace(tmp, env_path(env_id))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return env_path(env_id)


def _local_interpreter(python: str) -> Optional[str]:
    """This machine's interpreter of Python `python` (major.minor), the file itself."""
    if python == "%d.%d" % sys.version_info[:2]:
        return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    found = shutil.which(f"python{python}")
    return os.path.realpath(found) if found else None


def _repoint_interpreter(path: str, python: str) -> None:
    """Point the environment at this machine's Python (the builder's may have lived elsewhere)."""
    base = _local_interpreter(python)
    if base is None:
        raise EnvironmentBuildError(f"this machine has no Python {python} to run the environment with")
    if base == os.path.realpath(python_of(path)):
        return
    bindir = os.path.join(path, "bin")
    for name in ("python", "python3", f"python{python}"):
        link = os.path.join(bindir, name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(base, link)
    cfg = os.path.join(path, "pyvenv.cfg")
    with open(cfg, encoding="utf-8") as f:
        lines = [f"home = {os.path.dirname(base)}\n" if line.startswith("home =") else line for line in f]
    with open(cfg, "w", encoding="utf-8") as f:
        f.writelines(lines)


def sdk_path() -> str:
    """A folder holding only a link to the running flowplane package: the task's PYTHONPATH in
    an environment, so the SDK is importable there and nothing else beside it (a checkout's
    other folders, the tests, the control plane) is."""
    import flowplane

    package = os.path.dirname(os.path.realpath(flowplane.__file__))
    path = os.path.join(envs_dir(), "sdk", hashlib.sha256(package.encode()).hexdigest()[:16])
    if not os.path.exists(os.path.join(path, "flowplane")):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".sdk-", dir=os.path.dirname(path))
        os.symlink(package, os.path.join(tmp, "flowplane"))
        try:
            os.rename(tmp, path)
        except OSError:  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _said(stderr: str) -> str:
    text = " ".join(line.strip() for line in (stderr or "").strip().splitlines() if line.strip())
    return text[:2000] or "uv gave no reason"
