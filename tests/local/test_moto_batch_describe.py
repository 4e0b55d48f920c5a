"""moto patch 3: DescribeJobs looks the jobs asked for up by id or ARN, never walking every job
(a `.sync` poll per running task made the plane's CPU per task grow with the foreach's width)."""

from __future__ import annotations

from types import SimpleNamespace

from flowplane.local.moto_patches import _describe_jobs


class _NoWalk(dict):
    """A job table that fails the test if it is walked."""

    walked = False

    def items(self):  # type: ignore[override]
        type(self).walked = True
        return super().items()

    def values(self):  # type: ignore[override]
        type(self).walked = True
        return super().values()

    def __iter__(self):
        type(self).walked = True
        return super().__iter__()


def _job(job_id: str) -> SimpleNamespace:
    arn = f"arn:aws:batch:us-east-1:123456789012:job/{job_id}"
    return SimpleNamespace(job_id=job_id, arn=arn, describe=lambda: {"jobId": job_id, "jobArn": arn})


def _backend(n: int) -> SimpleNamespace:
    return SimpleNamespace(_jobs=_NoWalk({f"id-{i}": _job(f"id-{i}") for i in range(n)}))


def test_jobs_asked_for_by_id_or_arn_are_found_without_walking_every_job():
    backend = _backend(10_000)
    _NoWalk.walked = False
    arn = "arn:aws:batch:us-east-1:123456789012:job/id-42"
    got = _describe_jobs(backend, ["id-7", arn, "id-7", "id-none", "arn:aws:batch:us-east-1:1:job/id-9x"])
    assert [j["jobId"] for j in got] == ["id-7", "id-42"]
    assert not _NoWalk.walked


def test_an_arn_of_another_job_with_the_same_id_tail_is_not_that_job():
    backend = _backend(3)
    assert _describe_jobs(backend, ["arn:aws:batch:eu-west-1:999999999999:job/id-1"]) == []


def test_no_jobs_asked_for_lists_them_all():
    backend = _backend(3)
    assert [j["jobId"] for j in _describe_jobs(backend, None)] == ["id-0", "id-1", "id-2"]
    assert [j["jobId"] for j in _describe_jobs(backend, [])] == ["id-0", "id-1", "id-2"]
