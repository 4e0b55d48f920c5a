"""Errors as pages a person can act on: what went wrong, and what to do about it.

A read that fails is one of: nothing there (404), a bad request (400), the control
plane not answering (503), credentials that expired or are missing (401), or
something else (500, with the message). The kinds are told apart from the Client
API's own errors; botocore's credential errors are recognised by name, so this
module imports no AWS SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..client.exceptions import ClientError, InvalidPathspec, NotFound
from ..client.run_pages import InvalidPageToken
from ..client.service import ServiceError

# botocore's exceptions for credentials that are gone or stale (an SSO session, a role's token).
_CREDENTIAL_ERRORS = {
    "NoCredentialsError", "PartialCredentialsError", "TokenRetrievalError", "SSOTokenLoadError",
    "UnauthorizedSSOTokenError", "CredentialRetrievalError", "RefreshWithMFAUnsupportedError",
}
_EXPIRED_WORDS = ("expired", "security token", "ExpiredToken", "credentials")


@dataclass
class ErrorPage:
    status: int
    title: str
    message: str
    advice: Optional[str] = None


def _credentials_advice() -> str:
    return ("Sign in again the way you got these credentials (for example `aws sso login`, or new keys "
            "in your environment or AWS_PROFILE), then reload this page: the dashboard signs every "
            "request with the credentials the AWS CLI finds.")


def page_for(error: BaseException) -> ErrorPage:
    name = type(error).__name__
    if name in _CREDENTIAL_ERRORS:
        return ErrorPage(401, "Your AWS credentials have expired or are missing", str(error), _credentials_advice())
    if isinstance(error, ServiceError):
        if error.unreachable:
            return ErrorPage(
                503, "The control plane does not answer", str(error),
                "Check that it runs and that this machine can reach it: `flowplane local status` for the "
                "embedded plane, FLOWPLANE_API_URL or `api_url` in ~/.flowplane/config.json for a stack. "
                "To see local runs only, unset FLOWPLANE_API_URL. This page works again once it answers.")
        if error.status in (401, 403) or (error.status is None and any(w in error.reason for w in _EXPIRED_WORDS)):
            return ErrorPage(401, "The control plane refused your credentials", str(error), _credentials_advice())
        return ErrorPage(502, "The control plane answered with an error", str(error))
    if isinstance(error, (InvalidPathspec, InvalidPageToken)):
        return ErrorPage(400, "Bad request", str(error))
    if isinstance(error, NotFound):
        return ErrorPage(404, "Not found", str(error),
                         "The flow, run or task may be in another datastore or control plane than the one "
                         "this dashboard reads (its address is at the foot of each page).")
    if isinstance(error, ClientError):
        return ErrorPage(400, getattr(error, "headline", "Client API error"), str(error))
    return ErrorPage(500, "The dashboard failed", f"{name}: {error}")


def not_found(what: str) -> ErrorPage:
    return ErrorPage(404, "Not found", what)
