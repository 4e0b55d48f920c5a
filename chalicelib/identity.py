"""Who is calling: IAM (SigV4) authorization on the API and the caller it proves.

API Gateway checks the signature before the Lambda runs and puts the signer in
the request context (`identity.userArn`); that ARN, not what the client claims
in a manifest or a body, is the deployer recorded with a deployment and the
user checked against production tokens. The `local` stage has no API Gateway
in front of it, so there the client's word is all there is.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Optional

from chalice import Chalice, IAMAuthorizer

from .errors import Forbidden
from .settings import Settings

IAM = IAMAuthorizer()
# Load balancers and smoke tests need one route that answers without credentials.
OPEN_ROUTES = frozenset({("/health", "GET")})
LOCAL_STAGE = "local"


def require_iam(app: Chalice, open_routes: Iterable[tuple[str, str]] = OPEN_ROUTES) -> None:
    """Put the IAM authorizer on every route not listed as open.

    Applied to the assembled app rather than route by route, so a route added
    to any blueprint is signed-only unless someone decides otherwise here.
    Must run after every blueprint is registered.
    """
    # Chalice's local server and test client admit IAM-authorized routes with a warning on
    # every request; that is the local stage's documented behaviour here, not news.
    warnings.filterwarnings("ignore", message="IAMAuthorizer is not a supported in local mode", category=UserWarning)
    allowed = set(open_routes)
    for path, methods in app.routes.items():
        for method, entry in methods.items():
            if (path, method) not in allowed and entry.authorizer is None:
                entry.authorizer = IAM


def caller_arn(context: Optional[dict[str, Any]]) -> Optional[str]:
    """The signer's ARN from an API Gateway request context (REST API, IAM auth)."""
    identity = (context or {}).get("identity") or {}
    value = identity.get("userArn") or identity.get("caller")
    return value if isinstance(value, str) and value else None


def acting_user(context: Optional[dict[str, Any]], settings: Settings) -> Optional[str]:
    """The signer of this request; None on the local stage, where the caller's claim stands.

    Anywhere but the local stage a request without a signer did not come
    through API Gateway's IAM check (a direct Lambda invoke, a misconfigured
    route), so it is refused rather than trusted.
    """
    arn = caller_arn(context)
    if arn or settings.stage == LOCAL_STAGE:
        return arn
    raise Forbidden(
        f"the request carries no AWS identity; stage {settings.stage!r} accepts only SigV4-signed "
        "requests through API Gateway",
        field="authorization",
    )
