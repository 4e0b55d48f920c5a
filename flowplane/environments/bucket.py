"""Production environments: built once, by the first task that needs one, shared through the bucket.

A Batch container starts empty, so a task of a @pypi step looks in three places: this
machine's cache (cache.py; on the embedded plane, where tasks share a machine, it is
usually there), the archive `environments/<id>/<platform>.tar.gz` in the stack's bucket
(the bucket its package came from), and, when neither has it, builds it. Building is
claimed with a conditional put of `environments/<id>/<platform>.building` (If-None-Match),
so of many tasks starting at once one builds and uploads while the others wait for the
archive; a claim older than STALE_SECONDS (its builder died) is taken over. The control
plane takes no part: it never installs, unpacks or runs anything of an environment.
"""

from __future__ import annotations

import json
import os
import sysconfig
import tarfile
import tempfile
import time
from typing import Any, Callable, Optional

from ..manifest import LockedEnvironment
from . import cache

PREFIX = "environments/"
STALE_SECONDS = 30 * 60
WAIT_SECONDS = 30 * 60
POLL_SECONDS = 1.0


class EnvironmentFetchError(RuntimeError):
    """The environment could not be fetched or built; the message says why."""


def platform_tag() -> str:
    """What an archive is valid for: the platform its wheels were chosen for."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def archive_key(env_id: str) -> str:
    return f"{PREFIX}{env_id}/{platform_tag()}.tar.gz"


def claim_key(env_id: str) -> str:
    return f"{PREFIX}{env_id}/{platform_tag()}.building"


def fetch_or_build(
    client: Any, bucket: str, env_id: str, env: LockedEnvironment, say: Callable[[str], None] = print,
    wait_seconds: float = WAIT_SECONDS,
) -> str:
    """The environment's folder on this machine, from the cache, the bucket, or built here."""
    found = cache.ready_path(env_id)
    if found:
        return found
    deadline = time.monotonic() + wait_seconds
    announced = False
    while True:
        path = _download(client, bucket, env_id, env)
        if path is not None:
            say(f"Environment {env_id[:12]} unpacked from s3://{bucket}/{archive_key(env_id)}.")
            return path
        if _claim(client, bucket, env_id):
            try:
                return _build_and_upload(client, bucket, env_id, env, say)
            finally:
                _release(client, bucket, env_id)
        if _stale_claim(client, bucket, env_id):
            _release(client, bucket, env_id)
            continue
        if not announced:
            say(f"Environment {env_id[:12]} is being built by another task; waiting for its archive.")
            announced = True
        if time.monotonic() > deadline:
            raise EnvironmentFetchError(
                f"environment {env_id[:12]}: no archive at s3://{bucket}/{archive_key(env_id)} after "
                f"{wait_seconds:g} s while another task builds it"
            )
        time.sleep(POLL_SECONDS)


def _error_code(e: Exception) -> str:
    response = getattr(e, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _download(client: Any, bucket: str, env_id: str, env: LockedEnvironment) -> Optional[str]:
    os.makedirs(cache.envs_dir(), exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache.envs_dir(), prefix=".download-", suffix=".tar.gz") as f:
        try:
            body = client.get_object(Bucket=bucket, Key=archive_key(env_id))["Body"]
        except Exception as e:  # noqa: BLE001 - botocore's ClientError, without importing it here
            if _error_code(e) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise EnvironmentFetchError(f"cannot read s3://{bucket}/{archive_key(env_id)}: {e}") from None
        for chunk in iter(lambda: body.read(1 << 20), b""):
            f.write(chunk)
        f.flush()
        try:
            return cache.unpack(env_id, env, f.name)
        except (tarfile.TarError, OSError, cache.EnvironmentBuildError) as e:
            raise EnvironmentFetchError(f"cannot unpack s3://{bucket}/{archive_key(env_id)}: {e}") from None


def _claim(client: Any, bucket: str, env_id: str) -> bool:
    body = json.dumps({"claimed_at": time.time(), "host": os.uname().nodename, "pid": os.getpid()}).encode()
    try:
        client.put_object(Bucket=bucket, Key=claim_key(env_id), Body=body, IfNoneMatch="*")
        return True
    except Exception as e:  # noqa: BLE001
        if _error_code(e) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return False
        raise EnvironmentFetchError(f"cannot claim the build of environment {env_id[:12]} in s3://{bucket}: {e}") from None


def _stale_claim(client: Any, bucket: str, env_id: str) -> bool:
    try:
        claimed = json.loads(client.get_object(Bucket=bucket, Key=claim_key(env_id))["Body"].read())
        return time.time() - float(claimed["claimed_at"]) > STALE_SECONDS
    except Exception:  # noqa: BLE001 - released meanwhile, or unreadable: look again
        return False


def _release(client: Any, bucket: str, env_id: str) -> None:
    try:
        client.delete_object(Bucket=bucket, Key=claim_key(env_id))
    except Exception:  # noqa: BLE001 - a claim left behind goes stale
        pass


def _build_and_upload(client: Any, bucket: str, env_id: str, env: LockedEnvironment, say: Callable[[str], None]) -> str:
    started = time.monotonic()
    say(f"Building environment {env_id[:12]} (Python {env.python}) from its lock...")
    try:
        path, _ = cache.build(env_id, env)
    except cache.EnvironmentBuildError as e:
        raise EnvironmentFetchError(f"environment {env_id[:12]}: {e}") from None
    built = time.monotonic() - started
    with tempfile.NamedTemporaryFile(dir=cache.envs_dir(), prefix=".archive-", suffix=".tar.gz") as f:
        write_archive(path, f)
        f.flush()
        size = f.tell()
        f.seek(0)
        client.put_object(Bucket=bucket, Key=archive_key(env_id), Body=f)
    say(f"Environment {env_id[:12]} built in {built:.1f} s; its archive ({size / 1e6:.1f} MB) stored at "
        f"s3://{bucket}/{archive_key(env_id)}.")
    return path


def write_archive(path: str, out: Any) -> None:
    """The environment's folder as a tar.gz (names relative to it)."""
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=1) as tar:  # made by the task that waits for it: speed over size
        for name in sorted(os.listdir(path)):
            tar.add(os.path.join(path, name), arcname=name)
