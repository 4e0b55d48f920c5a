"""The SDK signs its requests (SigV4, service execute-api) for a control plane on AWS.

`FakeApiGateway` stands in for API Gateway's IAM check: it verifies the
signature with its own implementation of the SigV4 algorithm (AWS's "Create a
signed AWS API request" steps, not botocore), refuses what does not verify as
API Gateway does (403), and passes the signer's ARN to the app in the request
context, so a deploy through the SDK is recorded under the signer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from datetime import datetime, timedelta, timezone

import pytest
import requests
from botocore.credentials import Credentials

from flowplane.api_client import ApiClient, ApiError, SigV4Signer, auth_mode
from flowplane.user_config import ConfigError
from tests.support.identities import ALICE

pytestmark = pytest.mark.aws

REGION = "eu-west-1"
BASE = f"https://abc123defg.execute-api.{REGION}.amazonaws.com/dev"
KEYS = {"AKIDALICE": ("alice-secret", ALICE)}


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _encode(value: str) -> str:
    return urllib.parse.quote(value, safe="-_.~")


class SignatureRefused(Exception):
    pass


def verify_sigv4(method: str, url: str, headers: dict[str, str], body: bytes, service: str = "execute-api") -> str:
    """The access key of a valid signature; SignatureRefused with API Gateway's message otherwise."""
    h = {k.lower(): v for k, v in headers.items()}
    auth = h.get("authorization")
    if not auth:
        raise SignatureRefused("Missing Authentication Token")
    algorithm, _, rest = auth.partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        raise SignatureRefused("Unsupported signing algorithm")
    parts = dict(p.strip().split("=", 1) for p in rest.split(","))
    access_key, date, region, svc, terminal = parts["Credential"].split("/")
    if access_key not in KEYS:
        raise SignatureRefused("The security token included in the request is invalid.")
    amz_date = h.get("x-amz-date", "")
    when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    if abs(datetime.now(timezone.utc) - when) > timedelta(minutes=5) or not amz_date.startswith(date):
        raise SignatureRefused("Signature expired")
    if (svc, terminal) != (service, "aws4_request"):
        raise SignatureRefused("Credential should be scoped to correct service")
    split = urllib.parse.urlsplit(url)
    signed = parts["SignedHeaders"].split(";")
    values = {**h, "host": h.get("host", split.netloc)}
    if "host" not in signed or "x-amz-date" not in signed:
        raise SignatureRefused("host and x-amz-date must be signed")
    canonical_headers = "".join(f"{name}:{' '.join(values[name].split())}\n" for name in signed)
    query = sorted(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
    canonical_query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in query)
    canonical_request = "\n".join(
        [
            method,
            urllib.parse.quote(split.path or "/", safe="/~"),
            canonical_query,
            canonical_headers,
            parts["SignedHeaders"],
            hashlib.sha256(body or b"").hexdigest(),
        ]
    )
    scope = f"{date}/{region}/{svc}/{terminal}"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + KEYS[access_key][0]).encode(), date)
    for part in (region, svc, terminal):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts["Signature"]):
        raise SignatureRefused(
            "The request signature we calculated does not match the signature you provided."
        )
    return access_key


class FakeApiGateway:
    """A Transport: IAM authorization in front of the app; presigned S3 URLs go to moto unsigned."""

    def __init__(self, cp, sign_as, tamper=None) -> None:
        self.cp = cp
        self.sign_as = sign_as
        self.tamper = tamper
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    def __call__(self, method, url, headers, body):
        self.seen.append((method, url, dict(headers)))
        if not url.startswith(BASE):
            # The presigned PUT carries its own authorization; a SigV4 header would clash.
            assert "Authorization" not in headers
            r = requests.request(method, url, data=body, headers=headers)
            return r.status_code, dict(r.headers), r.content
        if self.tamper:
            body = self.tamper(body)
        try:
            access_key = verify_sigv4(method, url, headers, body or b"")
        except SignatureRefused as e:
            return 403, {"x-amzn-ErrorType": "ForbiddenException"}, json.dumps({"message": str(e)}).encode()
        self.sign_as(KEYS[access_key][1])
        path = url[len(BASE) :]
        lowered = {k.lower(): v for k, v in headers.items()}
        r = self.cp.client.http.request(method, path, headers=lowered, body=body or b"")
        return r.status_code, r.headers, r.body


ALICE_CREDS = Credentials("AKIDALICE", "alice-secret")


def test_a_request_to_api_gateway_is_signed_for_execute_api():
    seen = []

    def transport(method, url, headers, body):
        seen.append((url, headers))
        return 200, {}, b"{}"

    ApiClient(BASE, transport, credentials=Credentials("AKIDX", "s", "session-token")).list_runs("Flow", "running")
    url, headers = seen[0]
    assert headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDX/" + headers["X-Amz-Date"][:8] + f"/{REGION}/execute-api/aws4_request, "
    )
    assert "SignedHeaders=" in headers["Authorization"] and "Signature=" in headers["Authorization"]
    assert len(headers["X-Amz-Date"]) == 16 and headers["X-Amz-Date"].endswith("Z")
    assert headers["X-Amz-Security-Token"] == "session-token"


def test_the_local_plane_is_not_signed(monkeypatch):
    monkeypatch.delenv("FLOWPLANE_API_AUTH", raising=False)
    seen = []

    def transport(method, url, headers, body):
        seen.append(headers)
        return 200, {}, b"{}"

    for url in ("http://127.0.0.1:8000", "https://flowplane.example.com/api"):
        ApiClient(url, transport, credentials=ALICE_CREDS).health()
        assert "Authorization" not in seen[-1] and "X-Amz-Date" not in seen[-1]


def test_a_signed_deploy_is_recorded_under_the_signer(control_plane, signed_as):
    cp = control_plane
    gateway = FakeApiGateway(cp, signed_as)
    client = ApiClient(BASE, gateway, credentials=ALICE_CREDS)
    manifest, package = cp.build("parameter_flow.py", user="somebody-else")
    answer = client.upload_package(package, manifest)
    cp.deliver(package.key)
    record = client.deployment(answer["deployment_id"])
    assert record["status"] == "DEPLOYED" and record["deployer"] == ALICE
    # A query string (spaces, colons) verifies too.
    assert client.request("GET", "/deployments", query={"flow": "ParameterFlow", "x": "a b:c"})["flow"]["deployer"] == ALICE


def test_a_large_package_goes_to_s3_unsigned_through_the_presigned_url(control_plane, signed_as):
    cp = control_plane
    gateway = FakeApiGateway(cp, signed_as)
    client = ApiClient(BASE, gateway, inline_limit=0, credentials=ALICE_CREDS)
    manifest, package = cp.build("parameter_flow.py")
    answer = client.upload_package(package, manifest)
    puts = [(m, u) for m, u, _ in gateway.seen if m == "PUT"]
    assert len(puts) == 1 and not puts[0][1].startswith(BASE)
    cp.deliver(package.key)
    assert client.deployment(answer["deployment_id"])["deployer"] == ALICE


def test_an_unsigned_request_is_refused_and_changes_nothing(control_plane, signed_as):
    cp = control_plane
    before = cp.snapshot()
    client = ApiClient(BASE, FakeApiGateway(cp, signed_as), auth="none")
    manifest, package = cp.build("parameter_flow.py")
    with pytest.raises(ApiError) as e:
        client.upload_package(package, manifest)
    assert e.value.status == 403 and "Missing Authentication Token" in str(e.value)
    assert cp.snapshot() == before


@pytest.mark.parametrize(
    "credentials, tamper, message",
    [
        (Credentials("AKIDALICE", "wrong-secret"), None, "signature we calculated does not match"),
        (Credentials("AKIDNOBODY", "x"), None, "security token included in the request is invalid"),
        (ALICE_CREDS, lambda body: (body or b"") + b" ", "signature we calculated does not match"),
    ],
    ids=["wrong-secret", "unknown-key", "body-changed-after-signing"],
)
def test_a_bad_signature_is_refused(control_plane, signed_as, credentials, tamper, message):
    cp = control_plane
    before = cp.snapshot()
    client = ApiClient(BASE, FakeApiGateway(cp, signed_as, tamper), credentials=credentials)
    manifest, package = cp.build("parameter_flow.py")
    with pytest.raises(ApiError) as e:
        client.upload_package(package, manifest)
    assert e.value.status == 403 and message in str(e.value)
    assert cp.snapshot() == before


def test_a_custom_domain_is_signed_when_the_settings_say_so(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    url = "https://flowplane.example.com"
    monkeypatch.delenv("FLOWPLANE_API_AUTH", raising=False)
    assert auth_mode(url) == "none" and auth_mode(BASE) == "iam"
    monkeypatch.setenv("FLOWPLANE_API_AUTH", "iam")
    monkeypatch.setenv("FLOWPLANE_API_REGION", "ap-southeast-2")
    seen = []
    ApiClient(url, lambda m, u, h, b: (seen.append(h), (200, {}, b"{}"))[1], credentials=ALICE_CREDS).health()
    assert "/ap-southeast-2/execute-api/aws4_request" in seen[0]["Authorization"]
    # And from ~/.flowplane/config.json, beside api_url.
    monkeypatch.delenv("FLOWPLANE_API_AUTH")
    monkeypatch.delenv("FLOWPLANE_API_REGION")
    (tmp_path / ".flowplane").mkdir()
    (tmp_path / ".flowplane" / "config.json").write_text(
        json.dumps({"api_url": url, "auth": "IAM", "region": "ca-central-1"})
    )
    assert auth_mode(url) == "iam" and SigV4Signer.for_url(url).region == "ca-central-1"
    # An AWS URL can be told not to sign (a control plane deployed without IAM).
    monkeypatch.setenv("FLOWPLANE_API_AUTH", "none")
    assert auth_mode(BASE) == "none"


def test_bad_auth_settings_are_clear_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FLOWPLANE_API_AUTH", "sigv4")
    with pytest.raises(ConfigError, match="must be iam or none, not 'sigv4'"):
        ApiClient(BASE, lambda *a: (200, {}, b"{}")).health()
    with pytest.raises(ConfigError, match="auth must be one of iam, none"):
        ApiClient(BASE, auth="yes")
    monkeypatch.setenv("FLOWPLANE_API_AUTH", "iam")
    for var in ("FLOWPLANE_API_REGION", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="FLOWPLANE_API_REGION"):
        ApiClient("https://flowplane.example.com", lambda *a: (200, {}, b"{}")).health()


def test_no_credentials_is_a_clear_error_before_anything_is_sent(monkeypatch, tmp_path):
    for var in (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    sent = []
    client = ApiClient(BASE, lambda *a: (sent.append(a), (200, {}, b"{}"))[1])
    with pytest.raises(ConfigError, match="AWS credentials and none were found"):
        client.health()
    assert sent == []
