"""Once per idempotency key: a repeated mutating request gets the first answer.

A route decorated with `@idempotent(bp)` reads the request's `Idempotency-Key`
(flowplane/idempotency_key.py). Without one it simply runs. With one, Powertools'
Idempotency utility, persisting in the stage's table, makes the key's first request
the only one that acts:

- first time: a conditional PutItem claims the key (INPROGRESS), the view runs, its
  answer (status, body, headers) is stored with the record (UpdateItem);
- again, after it finished: the same conditional PutItem fails and returns the stored
  record in the same round trip (ReturnValuesOnConditionCheckFailure), whose answer is
  sent back marked `Idempotent-Replayed: true`; nothing acts;
- again, while the first still runs: 409 `IdempotencyKeyInProgress` with Retry-After
  (the SDK asks again); the claim lapses when the Lambda that holds it would have
  timed out, so a crashed request does not hold its key until the record expires;
- again, for another request (method, path or body differ): 422
  `IdempotencyKeyReused` naming the key; nothing acts.

A refusal (any ApiError) or a crash is not remembered: Powertools deletes the claim
and the next try is judged afresh (a refusal changed nothing, so that is safe).

Records live in the stage's table under one partition, `IDEMPOTENCY`, with the sort
key the hash of caller + key, and expire through the table's TTL attribute `ttl`
after `Settings.idempotency_ttl_seconds` (Powertools also ignores an expired record
itself, since DynamoDB deletes late). Keys are scoped by the signed caller, so
nobody can read another's answer by guessing a key.

Powertools' idempotency costs ~183 ms to import (shared/FACTS.md): it is imported
here only when a request carries a key, so reads and cold routes never pay it.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional

from chalice import Blueprint, Response

from flowplane.idempotency_key import HEADER, IN_PROGRESS_CODE, REPLAYED_HEADER, REUSED_CODE, key_problem

from . import keys
from .errors import BadRequest, Conflict, UnprocessableEntity
from .http import aws
from .identity import acting_user

if TYPE_CHECKING:
    from chalice.app import Request

    from .aws import Aws

# How long a claim holds when no Lambda context says how long the request may run (the
# embedded plane): API Gateway's own limit on a request, 29 s, rounded up.
DEFAULT_CLAIM_MILLIS = 30_000
# Seconds a client should wait before asking again about a key still in progress.
IN_PROGRESS_RETRY_AFTER = 1
# Run names derived from keys: a namespace of our own, so the same key names the same run.
_RUN_NAMESPACE = uuid.UUID("6b1f3c2e-7f1e-4f4e-9a55-3c0f1d1a2b19")


class KeyInProgress(Conflict):
    code = IN_PROGRESS_CODE
    headers = {"Retry-After": str(IN_PROGRESS_RETRY_AFTER)}


class KeyReused(UnprocessableEntity):
    code = REUSED_CODE


def request_key(headers: Any) -> Optional[str]:
    """The request's idempotency key; None without one; a 400 naming the header when malformed."""
    value = (headers or {}).get(HEADER.lower())
    if value is None:
        return None
    problem = key_problem(value)
    if problem:
        raise BadRequest(problem, field=HEADER)
    return value


def _scoped(request: "Request", a: "Aws", key: str) -> str:
    """The key as stored: the signed caller's (anyone's on the local stage) and the client's."""
    return f"{acting_user(request.context, a.settings) or ''}\n{key}"


def run_name(request: "Request") -> Optional[str]:
    """An execution name derived from the request's key (None without one).

    The launcher names a triggered run after the key (DESIGN.md: one path, exactly once),
    so even a retry arriving after the record expired, or after a crash between starting
    the execution and storing the answer, meets Step Functions' own refusal of a duplicate
    name (kept 90 days) instead of starting a second run. Shaped like the random names
    used without a key (a UUID), so run ids look alike.
    """
    key = request_key(request.headers)
    if key is None:
        return None
    return str(uuid.uuid5(_RUN_NAMESPACE, _scoped(request, aws(), key)))


def fingerprint(request: "Request") -> str:
    """What must be the same for a repeated key: method, route, path values and body."""
    h = hashlib.sha256()
    resource = (request.context or {}).get("resourcePath", "")
    params = sorted((request.uri_params or {}).items())
    h.update(f"{request.method}\n{resource}\n{params!r}\n".encode())
    raw = request.raw_body
    h.update(raw if isinstance(raw, bytes) else (raw or "").encode("utf-8", "surrogateescape"))
    return h.hexdigest()


_STORES: "weakref.WeakKeyDictionary[Aws, Any]" = weakref.WeakKeyDictionary()


def _store(a: "Aws") -> Any:
    """One persistence layer per stage's adapters (it keeps the DynamoDB client warm)."""
    store = _STORES.get(a)
    if store is None:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        store = _STORES[a] = DynamoDBPersistenceLayer(
            table_name=a.settings.table,
            key_attr="PK",
            sort_key_attr="SK",
            static_pk_value=keys.IDEMPOTENCY_PK,
            expiry_attr="ttl",  # the table's TTL attribute (chalicelib/TABLE.md)
            # A plain client: the table resource's own one re-serializes typed values.
            boto3_client=a.session.client("dynamodb", region_name=a.settings.region),
        )
    return store


class _Claim:
    """The Lambda context Powertools asks how long the request may still run."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def get_remaining_time_in_millis(self) -> int:
        remaining = getattr(self._context, "get_remaining_time_in_millis", None)
        return int(remaining()) if callable(remaining) else DEFAULT_CLAIM_MILLIS


def _answer(result: Any) -> dict[str, Any]:
    """A view's result as something JSON can keep: its status, body and headers."""
    if isinstance(result, Response):
        return {"status": result.status_code, "body": result.body, "headers": dict(result.headers or {})}
    return {"status": 200, "body": result, "headers": {}}


def _mark_replayed(response: Any, record: Any) -> Any:
    response = dict(response)
    response["headers"] = {**response.get("headers", {}), REPLAYED_HEADER: "true"}
    return response


def once(request: "Request", key: str, act: Callable[[], Any]) -> Response:
    """Run `act` for the first request with `key`; answer later ones with its answer."""
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    a = aws()
    config = IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="request",
        expires_after_seconds=a.settings.idempotency_ttl_seconds,
        hash_function="sha256",
        # A config per request: Powertools reads the Lambda context from it, and the
        # embedded plane serves requests on several threads.
        lambda_context=_Claim(request.lambda_context),
        response_hook=_mark_replayed,
    )

    def first(request: dict[str, Any]) -> dict[str, Any]:
        return _answer(act())

    run = idempotent_function(
        first, data_keyword_argument="request", persistence_store=_store(a), config=config,
        key_prefix=keys.IDEMPOTENCY_KEY_PREFIX,
    )
    try:
        answer = run(request={"key": _scoped(request, a, key), "request": fingerprint(request)})
    except IdempotencyValidationError:
        raise KeyReused(
            f"{HEADER} {key!r} was used before for a different request; use a new key for a new request",
            field=HEADER,
            key=key,
        ) from None
    except IdempotencyAlreadyInProgressError:
        raise KeyInProgress(
            f"the request with {HEADER} {key!r} is still being handled; ask again shortly",
            field=HEADER,
            key=key,
        ) from None
    return Response(body=answer["body"], status_code=answer["status"], headers=answer["headers"])


def idempotent(bp: Blueprint) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make a mutating route act once per idempotency key (put it under `@json_errors`)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = bp.current_request
            key = request_key(request.headers)
            if key is None:
                return view(*args, **kwargs)
            return once(request, key, lambda: view(*args, **kwargs))

        return wrapper

    return decorate
