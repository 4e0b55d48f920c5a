"""Fixtures of the control plane's tests (`control_plane` itself is in tests/conftest.py)."""

from __future__ import annotations

from typing import Callable

import chalice.local
import pytest


@pytest.fixture
def signed_as(monkeypatch: pytest.MonkeyPatch) -> Callable[[str | None], None]:
    """Make the local gateway put a signer in the request context, as API Gateway's IAM check does."""
    who: dict[str, str | None] = {"arn": None}
    original = chalice.local.LambdaEventConverter.create_lambda_event

    def create(self, *args, **kwargs):
        event = original(self, *args, **kwargs)
        if who["arn"]:
            event["requestContext"]["identity"]["userArn"] = who["arn"]
        return event

    monkeypatch.setattr(chalice.local.LambdaEventConverter, "create_lambda_event", create)

    def sign(arn: str | None) -> None:
        who["arn"] = arn

    return sign
