"""`@secrets`: read the step's Secrets Manager secrets into its task's environment.

Each secret is a JSON object; its keys become environment variables of the task
process when it starts (before the step's code runs), as Metaflow's @secrets
does. The values live only in that process's environment: they are never put in
artifacts, records, events or logs, and errors name the secret, never a value.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

from ..manifest import check_env_name
from .errors import TaskSetupError


def secret_environment(sources: list[str], get_secret: Optional[Callable[[str], str]] = None) -> dict[str, str]:
    """The variables the secrets `sources` give; a TaskSetupError naming the secret at fault."""
    fetch = get_secret or _get_secret_string
    env: dict[str, str] = {}
    origin: dict[str, str] = {}
    for source in sources:
        text = fetch(source)
        try:
            values = json.loads(text)
        except json.JSONDecodeError:
            values = None
        if not isinstance(values, dict):
            raise TaskSetupError(f"@secrets: the secret {source!r} must hold a JSON object of NAME: value pairs")
        for key, value in values.items():
            try:
                check_env_name(key)
            except ValueError as e:
                raise TaskSetupError(f"@secrets: the secret {source!r}: {e}") from None
            if key in origin:
                raise TaskSetupError(f"@secrets: {key!r} is in both {origin[key]!r} and {source!r}; a variable comes from one secret")
            origin[key] = source
            env[key] = value if isinstance(value, str) else json.dumps(value)
    return env


def _get_secret_string(source: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    from .aws import client

    try:
        answer: Any = client("secretsmanager").get_secret_value(SecretId=source)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise TaskSetupError(f"@secrets: no secret {source!r} in Secrets Manager (check its name and region)") from None
        if code in ("AccessDeniedException", "AccessDenied"):
            raise TaskSetupError(
                f"@secrets: the task may not read the secret {source!r}; tasks read only secrets under the stage's prefix"
            ) from None
        raise TaskSetupError(f"@secrets: reading the secret {source!r} failed ({code})") from None
    except BotoCoreError as e:
        raise TaskSetupError(f"@secrets: reading the secret {source!r} failed ({type(e).__name__}: {e})") from None
    if "SecretString" not in answer:
        raise TaskSetupError(f"@secrets: the secret {source!r} is binary; it must hold a JSON object (a string)")
    return answer["SecretString"]
