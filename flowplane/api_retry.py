"""When and how the SDK asks the control plane again: the retry policy of every request.

On AWS, API Gateway and Lambda answer transient failures every day: 429 when
throttled, 500/502/503/504 on a cold start or a Lambda error, a reset connection or
a timeout. Such a failure is retried; a refusal (any other 4xx) never is, and its
message stays the control plane's. The one 4xx retried is the control plane's "the
first request with this idempotency key is still being handled" (409,
flowplane/idempotency_key.py): it is an invitation to ask again, not a refusal.

Waits are capped exponential backoff with full jitter (a random wait in a window
that doubles from `initial` up to `cap`), so many clients throttled together do
not come back together; a `Retry-After` the server sends is honoured instead. A
request gives up after `attempts` tries or when the next wait would pass
`deadline` seconds since its first try, whichever comes first; a wait of
`notice_after` seconds or more is announced on the `flowplane.api` logger.

Retrying a request that changes something is safe only because each carries an
idempotency key, the same on every try (flowplane/api_client.py).

The loop is tenacity's (pinned in pyproject.toml): it works above any `Transport`
(urllib, the in-process app in tests, the presigned S3 upload), composes the
attempt and deadline limits and the jittered wait from tested parts, and gives the
hook the long-wait message needs. urllib3's `Retry` would bind retries to urllib3's
connection pool and has no total deadline; botocore's handler serves botocore's own
clients.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, TypeVar

from .idempotency_key import IN_PROGRESS_CODE

if TYPE_CHECKING:
    import tenacity

log = logging.getLogger("flowplane.api")

T = TypeVar("T")

# Throttled, or the service (API Gateway, Lambda) failed this time.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class TransientNetworkError(OSError):
    """The exchange broke after the request may have been sent: reset, cut, timed out."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    deadline: float = 90.0
    initial: float = 0.25
    cap: float = 10.0
    notice_after: float = 2.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def backoff(self, attempt: int) -> float:
        """Full jitter: a random wait up to min(cap, initial * 2^(attempt-1)) after try `attempt`."""
        return self.rng.uniform(0, min(self.cap, self.initial * 2 ** max(0, attempt - 1)))

    def call(self, send: Callable[[], T], what: str, status_of: Callable[[T], Optional[int]],
             retry_after_of: Callable[[T], Optional[float]], retryable: Callable[[T], bool]) -> T:
        """`send()` until it succeeds, fails for good, or the attempts or deadline run out.

        `send` raises TransientNetworkError for a broken exchange; any other exception
        ends it at once. The last answer is returned even when retryable (the caller
        turns it into the control plane's error); the last exception is raised.
        """
        # Imported on the first request, not with the SDK (~30 ms: it brings asyncio along).
        import tenacity

        start = self.clock()

        def wait(state: "tenacity.RetryCallState") -> float:
            outcome = state.outcome
            if outcome is not None and not outcome.failed:
                after = retry_after_of(outcome.result())
                if after is not None:
                    return after
            return self.backoff(state.attempt_number)

        def out_of_time(state: "tenacity.RetryCallState") -> bool:
            if state.attempt_number >= self.attempts:
                return True
            return self.clock() - start + state.upcoming_sleep > self.deadline

        def announce(state: "tenacity.RetryCallState") -> None:
            pause = state.upcoming_sleep
            if pause < self.notice_after:
                return
            outcome = state.outcome
            if outcome is None:
                return
            if outcome.failed:
                reason = str(outcome.exception())
            else:
                reason = f"it answered HTTP {status_of(outcome.result())}"
            log.warning("%s: %s; trying again in %.1f s (attempt %d of %d, %.0f s left)", what, reason, pause,
                        state.attempt_number + 1, self.attempts, self.deadline - (self.clock() - start))

        def give_up(state: "tenacity.RetryCallState") -> T:
            outcome = state.outcome
            assert outcome is not None
            if outcome.failed:
                e = outcome.exception()
                # The same kind of error, so callers tell it apart as before; saying how hard we tried.
                raise type(e)(
                    f"{e} (gave up after {state.attempt_number} attempts in {self.clock() - start:.1f} s)"
                ) from e
            return outcome.result()

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientNetworkError) | tenacity.retry_if_result(retryable),
            wait=wait,
            stop=out_of_time,
            before_sleep=announce,
            retry_error_callback=give_up,
            sleep=self.sleep,
        )
        return retrying(send)


def http_retryable(status: int, body: bytes) -> bool:
    """Whether an HTTP answer is worth asking again (see the module's docstring)."""
    if status in RETRY_STATUSES:
        return True
    if status != 409:
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("code") == IN_PROGRESS_CODE


def retry_after(headers: Mapping[str, Any], now: Callable[[], float] = time.time) -> Optional[float]:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date); None without one."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = str(value).strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())
