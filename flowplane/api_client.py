"""The SDK's HTTP client of the control plane.

Where the control plane lives: `FLOWPLANE_API_URL`, else `api_url` in
`~/.flowplane/config.json`. Requests go through a `Transport` (urllib by
default, stdlib only, so a task or a notebook needs nothing more), which tests
replace with one that calls the Chalice app in-process.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Optional, Protocol

from .manifest import Manifest
from .package import Package

CONFIG_PATH = os.path.join("~", ".flowplane", "config.json")
# API Gateway takes 10 MB, but a Lambda event holds 6 MB and a binary body grows by a
# third in base64: anything larger goes straight to S3 through a presigned URL.
INLINE_LIMIT = 4 * 1024 * 1024


class ApiError(Exception):
    """The control plane said no; `body` is its JSON answer ({"error": ..., "field"...})."""

    def __init__(self, status: int, body: Any, method: str = "", path: str = "") -> None:
        self.status = status
        self.body = body if isinstance(body, dict) else {"error": str(body)}
        self.method = method
        self.path = path
        super().__init__(self.describe())

    @property
    def message(self) -> str:
        return str(self.body.get("error") or self.body.get("Message") or self.body.get("message") or "")

    def describe(self) -> str:
        where = []
        for key in ("field", "step", "line", "parameter", "stage"):
            if self.body.get(key) not in (None, ""):
                where.append(f"{key} {self.body[key]}")
        suffix = f" ({', '.join(where)})" if where else ""
        return f"{self.message or 'HTTP ' + str(self.status)}{suffix}"


class ConfigError(Exception):
    """No control plane is configured."""


class Transport(Protocol):
    def __call__(
        self, method: str, url: str, headers: dict[str, str], body: Optional[bytes]
    ) -> tuple[int, dict[str, str], bytes]: ...


def urllib_transport(timeout: float = 60.0) -> Transport:
    def send(method: str, url: str, headers: dict[str, str], body: Optional[bytes]) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers or {}), e.read()
        except urllib.error.URLError as e:
            raise ConfigError(f"cannot reach {url}: {e.reason}") from None

    return send


def configured_url() -> str:
    url = os.environ.get("FLOWPLANE_API_URL")
    if url:
        return url.rstrip("/")
    path = os.path.expanduser(CONFIG_PATH)
    try:
        with open(path, encoding="utf-8") as f:
            url = json.load(f).get("api_url")
    except FileNotFoundError:
        url = None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not readable JSON ({e})") from None
    if not url:
        raise ConfigError(
            "no control plane configured: set FLOWPLANE_API_URL or put {\"api_url\": ...} in ~/.flowplane/config.json"
        )
    return str(url).rstrip("/")


class ApiClient:
    def __init__(
        self, base_url: Optional[str] = None, transport: Optional[Transport] = None, inline_limit: int = INLINE_LIMIT
    ) -> None:
        self._base_url = base_url
        self.transport = transport or urllib_transport()
        self.inline_limit = inline_limit

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            self._base_url = configured_url()
        return self._base_url

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        data: Optional[bytes] = None,
        content_type: Optional[str] = None,
        query: Optional[dict[str, Any]] = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        status, _, raw = self.transport(method, url, headers, data)
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {"error": raw.decode("utf-8", "replace")[:500]}
        if status >= 400:
            raise ApiError(status, answer, method, path)
        return answer

    # --- deploying ---------------------------------------------------------------

    def upload_package(self, package: Package, manifest: Manifest) -> dict[str, Any]:
        """Send a package: in the request when small, else straight to S3. Returns the 202 answer."""
        if package.size <= self.inline_limit:
            return self.request("POST", "/packages", data=package.data, content_type="application/gzip")
        answer = self.request(
            "POST",
            "/packages",
            body={"sha256": package.sha256, "size": package.size, "manifest": manifest.model_dump(mode="json")},
        )
        upload = answer["upload"]
        status, _, raw = self.transport(upload["method"], upload["url"], dict(upload["headers"]), package.data)
        if status >= 300:
            raise ApiError(status, {"error": f"the upload to S3 failed: {raw.decode('utf-8', 'replace')[:300]}"})
        return answer

    def compile(self, package: Package) -> dict[str, Any]:
        """The state machine the control plane would deploy; nothing changes."""
        return self.request("POST", "/compile", data=package.data, content_type="application/gzip")

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        return self.request("GET", f"/deployments/{urllib.parse.quote(deployment_id)}")

    def wait_for_deployment(
        self,
        deployment_id: str,
        timeout: float = 600.0,
        on_progress: Optional[Callable[[dict[str, Any]], None]] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any]:
        """Poll until DEPLOYED or FAILED; TimeoutError names the last stage seen."""
        deadline = time.monotonic() + timeout
        interval = 0.25
        while True:
            record = self.deployment(deployment_id)
            if on_progress:
                on_progress(record)
            if record.get("status") in ("DEPLOYED", "FAILED"):
                return record
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"deployment {deployment_id} is still {record.get('status')} ({record.get('stage')}) "
                    f"after {timeout:.0f} s"
                )
            sleep(interval)
            interval = min(interval * 2, 2.0)

    def deployments(self, name: str) -> dict[str, Any]:
        return self.request("GET", "/deployments", query={"flow": name})

    # --- runs -----------------------------------------------------------------------

    def trigger(self, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/flows/{_seg(name)}/runs", body={"parameters": parameters})

    def list_runs(self, name: str, status: Optional[str] = None, limit: int = 100) -> dict[str, Any]:
        return self.request("GET", f"/flows/{_seg(name)}/runs", query={"status": status, "limit": limit})

    def terminate(self, name: str, run_id: str) -> dict[str, Any]:
        return self.request("POST", f"/flows/{_seg(name)}/runs/{_seg(run_id)}/terminate", body={})

    def delete_flow(self, name: str, user: str, authorize: Optional[str] = None) -> dict[str, Any]:
        return self.request("DELETE", f"/flows/{_seg(name)}", body={"user": user, "authorize": authorize})

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")


def _seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")
