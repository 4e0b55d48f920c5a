"""The SDK's HTTP client of the control plane.

Where the control plane lives: `FLOWPLANE_API_URL`, else `api_url` in
`~/.flowplane/config.json` (user_config.py), else the embedded local one
(flowplane/local/discover.py). Requests go through a `Transport` (urllib by
default, stdlib only, so a task or a notebook needs nothing more), which tests
replace with one that calls the Chalice app in-process.

A control plane on AWS answers only SigV4-signed requests (IAM authorization
on API Gateway): requests to an `execute-api` URL are signed with the user's
AWS credentials through botocore, found as the AWS CLI finds them. Another
URL (a custom domain) is signed when `FLOWPLANE_API_AUTH=iam` (or `"auth":
"iam"` in the config file) says so; the local and embedded planes are not.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Optional, Protocol

from .idempotency_key import HEADER as IDEMPOTENCY_HEADER
from .idempotency_key import new_key
from .manifest import Manifest
from .package import Package
from .api_retry import RetryPolicy, TransientNetworkError, http_retryable, retry_after
from .user_config import CONFIG_PATH, ConfigError, configured_url, setting

AUTH_MODES = ("iam", "none")
# https://<api id>.execute-api.<region>.amazonaws.com[.cn]/<stage>: API Gateway's own hosts.
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
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


class Unreachable(ConfigError):
    """The control plane did not answer at all (refused, unresolvable, down).

    A ConfigError, as the CLI reports it the same way; the Client API tells it apart
    from a plane that answered with an error (flowplane/client/combined.py).
    """


class Transient(Unreachable, TransientNetworkError):
    """The exchange broke (reset, cut, timed out) after the request may have reached the
    plane: retried (flowplane/api_retry.py), and reported as Unreachable when retries run out."""


# Methods that change something: each request carries an idempotency key.
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Transport(Protocol):
    def __call__(
        self, method: str, url: str, headers: dict[str, str], body: Optional[bytes]
    ) -> tuple[int, dict[str, str], bytes]: ...


def urllib_transport(timeout: float = 60.0) -> Transport:
    """`timeout`: seconds to connect, and then to wait for each part of the answer."""

    def send(method: str, url: str, headers: dict[str, str], body: Optional[bytes]) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers or {}), e.read()
        except urllib.error.URLError as e:
            # Refused or unresolvable: nothing listens there (API Gateway never refuses; a
            # local plane that is not running does), so it is said at once, not retried.
            if isinstance(e.reason, (ConnectionRefusedError, socket.gaierror)):
                raise Unreachable(f"cannot reach {url}: {e.reason}") from None
            raise Transient(f"cannot reach {url}: {e.reason}") from None
        except (OSError, http.client.HTTPException) as e:
            # Reset, cut mid-answer (RemoteDisconnected, IncompleteRead) or timed out reading.
            raise Transient(f"{method} {url}: the connection broke ({type(e).__name__}: {e})") from None

    return send


def auth_mode(url: str) -> str:
    """"iam" (sign) or "none": FLOWPLANE_API_AUTH, else the config's "auth", else by the URL."""
    mode = setting("FLOWPLANE_API_AUTH", "auth")
    if mode is not None:
        mode = mode.strip().lower()
        if mode not in AUTH_MODES:
            raise ConfigError(f"FLOWPLANE_API_AUTH (or \"auth\" in {CONFIG_PATH}) must be iam or none, not {mode!r}")
        return mode
    return "iam" if _EXECUTE_API_HOST.match(urllib.parse.urlsplit(url).hostname or "") else "none"


class SigV4Signer:
    """Signs a request for API Gateway (service `execute-api`) with botocore.

    Credentials come from botocore's usual chain (environment, profile, SSO,
    instance role) unless given; refreshable ones are refreshed by botocore.
    """

    SERVICE = "execute-api"

    def __init__(self, region: str, credentials: Any = None) -> None:
        self.region = region
        self._credentials = credentials

    @classmethod
    def for_url(cls, url: str, credentials: Any = None) -> "SigV4Signer":
        match = _EXECUTE_API_HOST.match(urllib.parse.urlsplit(url).hostname or "")
        region = match.group(1) if match else setting("FLOWPLANE_API_REGION", "region")
        if not region:
            import botocore.session

            region = botocore.session.get_session().get_config_variable("region")
        if not region:
            raise ConfigError(
                f"cannot tell the AWS region of {url} to sign requests: set FLOWPLANE_API_REGION "
                f"(or \"region\" in {CONFIG_PATH})"
            )
        return cls(region, credentials)

    def _frozen(self) -> Any:
        if self._credentials is None:
            import botocore.session

            self._credentials = botocore.session.get_session().get_credentials()
        if self._credentials is None:
            raise ConfigError(
                "the control plane needs requests signed with AWS credentials and none were found: "
                "configure them as for the AWS CLI (aws configure, AWS_PROFILE, aws sso login), or set "
                "FLOWPLANE_API_AUTH=none for a control plane without IAM authorization"
            )
        return self._credentials.get_frozen_credentials()

    def __call__(self, method: str, url: str, headers: dict[str, str], body: Optional[bytes]) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
        SigV4Auth(self._frozen(), self.SERVICE, self.region).add_auth(request)
        return dict(request.headers.items())


class ApiClient:
    def __init__(
        self,
        base_url: Optional[str] = None,
        transport: Optional[Transport] = None,
        inline_limit: int = INLINE_LIMIT,
        auth: Optional[str] = None,
        credentials: Any = None,
        retry: Optional[RetryPolicy] = None,
    ) -> None:
        """auth: "iam" or "none"; None decides from the settings and the URL (see auth_mode).
        retry: when and how long to ask again (flowplane/api_retry.py; its defaults otherwise)."""
        if auth is not None and auth not in AUTH_MODES:
            raise ConfigError(f"auth must be one of {', '.join(AUTH_MODES)}, not {auth!r}")
        self._base_url = base_url
        self.transport = transport or urllib_transport()
        self.inline_limit = inline_limit
        self.retry = retry or RetryPolicy()
        self._auth = auth
        self._credentials = credentials
        self._signer: Optional[SigV4Signer] = None
        self._signer_decided = False

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            try:
                self._base_url = configured_url()
            except ConfigError:
                # Nothing configured: the embedded local control plane (see flowplane/local/discover.py).
                from .local.discover import embedded_url

                self._base_url = embedded_url()
        return self._base_url

    @property
    def signer(self) -> Optional[SigV4Signer]:
        """The SigV4 signer when this control plane takes signed requests, else None."""
        if not self._signer_decided:
            mode = self._auth or auth_mode(self.base_url)
            self._signer = SigV4Signer.for_url(self.base_url, self._credentials) if mode == "iam" else None
            self._signer_decided = True
        return self._signer

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        data: Optional[bytes] = None,
        content_type: Optional[str] = None,
        query: Optional[dict[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Any:
        """One user action: a mutating request carries `idempotency_key` (a new one unless
        given), the same on every retry, so the plane acts on it once."""
        headers = {"Accept": "application/json"}
        if method in MUTATING_METHODS:
            headers[IDEMPOTENCY_HEADER] = idempotency_key or new_key()
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        url = self.base_url + path
        if query:
            # %20 rather than '+': what SigV4's canonical query string expects.
            url += "?" + urllib.parse.urlencode(
                {k: v for k, v in query.items() if v is not None}, quote_via=urllib.parse.quote
            )
        status, _, raw = self.exchange(method, url, headers, data, what=f"{method} {path}", sign=True)
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {"error": raw.decode("utf-8", "replace")[:500]}
        if status >= 400:
            raise ApiError(status, answer, method, path)
        return answer

    def exchange(
        self, method: str, url: str, headers: dict[str, str], data: Optional[bytes], what: str, sign: bool = False
    ) -> tuple[int, dict[str, str], bytes]:
        """One request through the transport, retried by the policy; signed afresh each try."""

        def attempt() -> tuple[int, dict[str, str], bytes]:
            sent = self.signer(method, url, headers, data) if sign and self.signer is not None else headers
            return self.transport(method, url, sent, data)

        return self.retry.call(
            attempt,
            what,
            status_of=lambda answer: answer[0],
            retry_after_of=lambda answer: retry_after(answer[1]),
            retryable=lambda answer: http_retryable(answer[0], answer[2]),
        )

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
        # The same bytes to the same content-addressed key: safe to send again.
        status, _, raw = self.exchange(
            upload["method"], upload["url"], dict(upload["headers"]), package.data, what="the upload to S3"
        )
        if status >= 300:
            raise ApiError(status, {"error": f"the upload to S3 failed: {raw.decode('utf-8', 'replace')[:300]}"})
        return answer

    def put_include(self, flow: str, sha256: str, data: bytes) -> dict[str, Any]:
        """Store an IncludeFile's bytes in the stage's datastore (once per content), straight to S3."""
        answer = self.request("POST", f"/flows/{_seg(flow)}/includes", body={"sha256": sha256, "size": len(data)})
        upload = answer.get("upload")
        if upload:
            status, _, raw = self.transport(upload["method"], upload["url"], dict(upload["headers"]), data)
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
        # Short first: a deploy on the embedded plane is done in a few tenths of a second.
        interval = 0.05
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
            interval = min(interval * 1.5, 2.0)

    def deployments(self, name: str) -> dict[str, Any]:
        return self.request("GET", "/deployments", query={"flow": name})

    # --- runs -----------------------------------------------------------------------

    def trigger(self, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/flows/{_seg(name)}/runs", body={"parameters": parameters})

    def list_runs(
        self,
        flow: str,
        status: Optional[str] = None,
        limit: int = 100,
        deployment: Optional[str] = None,
        next_token: Optional[str] = None,
    ) -> dict[str, Any]:
        """A page of the flow's runs (its class name); `deployment` keeps one deployment's."""
        query = {"status": status, "limit": limit, "deployment": deployment, "next_token": next_token}
        return self.request("GET", f"/flows/{_seg(flow)}/runs", query=query)

    def publish_event(self, name: str, payload: dict[str, Any], event_id: Optional[str] = None) -> dict[str, Any]:
        """Put an event on the stack's bus (flowplane/trigger_events.py); answers its name, id and time."""
        body: dict[str, Any] = {"name": name, "payload": payload}
        if event_id:
            body["id"] = event_id
        return self.request("POST", "/events", body=body)

    def refused_triggers(self, name: str) -> list[dict[str, Any]]:
        """The deployment's latest refused triggers, newest first (at, reason, causes)."""
        return self.request("GET", f"/flows/{_seg(name)}/triggers/refused")["refused"]

    def terminate(self, name: str, run_id: str) -> dict[str, Any]:
        return self.request("POST", f"/flows/{_seg(name)}/runs/{_seg(run_id)}/terminate", body={})

    def delete_flow(self, name: str, user: str, authorize: Optional[str] = None) -> dict[str, Any]:
        return self.request("DELETE", f"/flows/{_seg(name)}", body={"user": user, "authorize": authorize})

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")

    def put_notifications(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace the deployment's run-end notifications ({on_error, on_success, slack_webhook_url,
        sns_topic, user, authorize}); the answer never holds the webhook."""
        return self.request("PUT", f"/flows/{_seg(name)}/notifications", body=body)

    def notifications(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/flows/{_seg(name)}/notifications")

    # --- operating a schedule ------------------------------------------------------

    def schedule(self, name: str, next_count: int = 5, after: Optional[str] = None) -> dict[str, Any]:
        """The production schedule: expression, zone, pause state, last scheduled runs, next fire
        times (after `after`, an ISO 8601 time, else after now)."""
        return self.request("GET", f"/flows/{_seg(name)}/schedule", query={"next": next_count, "after": after})

    def set_paused(self, name: str, paused: bool, user: str, authorize: Optional[str] = None) -> dict[str, Any]:
        action = "pause" if paused else "unpause"
        return self.request("POST", f"/flows/{_seg(name)}/schedule/{action}", body={"user": user, "authorize": authorize})

    def backfill(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """One step of a backfill ({start, end, max_parallel, yes, user, authorize}); call again until DONE."""
        return self.request("POST", f"/flows/{_seg(name)}/backfill", body=body)


def _seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")
