"""The user's SDK settings: `~/.flowplane/config.json` and the variables that override it.

The file is a JSON object: `api_url` (the control plane), `auth` (`iam` or `none`) and
`region` (to sign requests for a custom domain); each is overridden by its environment
variable (FLOWPLANE_API_URL, FLOWPLANE_API_AUTH, FLOWPLANE_API_REGION). Not a flow's
`Config` values, which are config.py's.

A leaf module (standard library only): the HTTP client (api_client.py), the Client API
deciding where to read (client/service.py) and the embedded plane's discovery
(local/discover.py) read it, and a local read must not pay for the HTTP client's imports.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

CONFIG_PATH = os.path.join("~", ".flowplane", "config.json")
API_URL_ENV = "FLOWPLANE_API_URL"
NOT_CONFIGURED = (
    f"no control plane configured: set {API_URL_ENV} or put {{\"api_url\": ...}} in {CONFIG_PATH}"
)


class ConfigError(Exception):
    """No control plane is configured, or the settings that name it are wrong."""


def read() -> dict[str, Any]:
    """The settings file's object; {} when there is none."""
    path = os.path.expanduser(CONFIG_PATH)
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not readable JSON ({e})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return value


def setting(env: str, key: str) -> Optional[str]:
    """The variable `env` when set, else the file's `key`, else None."""
    value = os.environ.get(env)
    if value:
        return value
    value = read().get(key)
    return str(value) if value else None


def env_api_url() -> Optional[str]:
    """The control plane FLOWPLANE_API_URL names, if any."""
    url = os.environ.get(API_URL_ENV)
    return url.rstrip("/") if url else None


def file_api_url() -> Optional[str]:
    """The control plane the settings file names, if any."""
    url = read().get("api_url")
    return str(url).rstrip("/") if url else None


def configured_url() -> str:
    """The configured control plane: FLOWPLANE_API_URL, else the file's `api_url`."""
    url = env_api_url()
    if url is None:
        url = file_api_url()
    if url is None:
        raise ConfigError(NOT_CONFIGURED)
    return url
