"""The error contract every route shares: each public error's status and JSON body."""

from __future__ import annotations

import pytest

from chalicelib import errors
from chalicelib.query.blobs import DatastoreNotOnS3
from chalicelib.query.reads import Missing

PUBLIC = [
    (errors.ApiError, 400, "BadRequest"),
    (errors.BadRequest, 400, "BadRequest"),
    (errors.Forbidden, 403, "Forbidden"),
    (errors.NotFound, 404, "NotFound"),
    (errors.Conflict, 409, "Conflict"),
    (errors.PayloadTooLarge, 413, "PayloadTooLarge"),
    (errors.UnsupportedMediaType, 415, "UnsupportedMediaType"),
    # Declared elsewhere without status=: they keep the status they inherit or set, and their own code.
    (Missing, 404, "not_found"),
    (DatastoreNotOnS3, 500, "datastore_not_on_s3"),
]


@pytest.mark.parametrize("cls, status, code", PUBLIC, ids=[c.__name__ for c, _, _ in PUBLIC])
def test_status_and_code(cls: type, status: int, code: str) -> None:
    assert (cls.status, cls.code) == (status, code)
    assert issubclass(cls, errors.ApiError)


def test_body_names_the_fault_and_keeps_extra_keys_in_order() -> None:
    e = errors.Conflict("run 'r' is SUCCEEDED, not RUNNING", field="run_id", status="SUCCEEDED")
    assert e.to_dict() == {
        "error": "run 'r' is SUCCEEDED, not RUNNING",
        "code": "Conflict",
        "field": "run_id",
        "status": "SUCCEEDED",
    }
    # An extra key called status is body text only: the HTTP status stays the class's.
    assert e.status == 409
    assert str(e) == e.message


def test_body_leaves_out_what_is_not_given() -> None:
    assert errors.NotFound("no flow 'x'").to_dict() == {"error": "no flow 'x'", "code": "NotFound"}
    assert errors.BadRequest("bad", step="a", line=3).to_dict() == {
        "error": "bad",
        "code": "BadRequest",
        "step": "a",
        "line": 3,
    }


def test_a_subclass_of_a_public_error_inherits_its_status_and_code() -> None:
    class Gone(errors.NotFound):
        pass

    class Teapot(errors.ApiError, status=418):
        code = "teapot"

    assert (Gone.status, Gone.code) == (404, "NotFound")
    assert (Teapot.status, Teapot.code) == (418, "teapot")
