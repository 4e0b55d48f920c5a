"""A refusal by the control plane, as every bad input must get one (no tests here)."""

from __future__ import annotations

from typing import Any


def refused(cp: Any, before: dict[str, Any], response: Any, status: int, **expect: Any) -> dict[str, Any]:
    """A 4xx JSON body naming the fault (`expect`: fields it must hold, or `error_contains`),
    and nothing stored changed since the snapshot `before`. Returns the body."""
    assert response.status_code == status, response.body
    assert response.headers.get("Content-Type", "").startswith("application/json")
    body = response.json_body
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
    for key, value in expect.items():
        if key == "error_contains":
            assert value in body["error"], body
        else:
            assert body.get(key) == value, body
    assert cp.snapshot() == before, "a refused request changed what is stored"
    return body
