"""Property: no package and no request body gets anything but a 4xx naming the field, in bounded
time and memory; and a package that is accepted unpacks in the task to exactly what was checked.

Pure functions, no AWS: the quick subset runs a few examples (the "quick" hypothesis
profile), `make test` more ("full"). tests/control_plane/test_app_hostile_property.py drives the
same strategies through the routes, showing nothing is stored by a refusal.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import time
import tracemalloc

from hypothesis import HealthCheck, given, settings

from chalicelib.errors import ApiError
from chalicelib.http import json_body
from chalicelib.deploy.package_check import validate_package
from chalicelib.runs.inputs import check_input_size, convert_parameters, execution_input
from flowplane import limits
from flowplane.manifest import ParameterSpec
from flowplane.task.loader import _extract
from tests.support.hostile_strategies import HOSTILE, packages, trigger_bodies

MB = 1024 * 1024
SPECS = [
    ParameterSpec(name="alpha", attribute="alpha", type="float", default=0.01, has_default=True),
    ParameterSpec(name="n", attribute="n", type="int"),
    ParameterSpec(name="flag", attribute="flag", type="bool"),
    ParameterSpec(name="config", attribute="config", type="json"),
    ParameterSpec(name="name", attribute="name", type="str"),
]
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]


def a_refusal(e: ApiError) -> None:
    """A 4xx whose JSON body names what is at fault."""
    body = e.to_dict()
    assert 400 <= e.status < 500 and isinstance(body["error"], str) and body["error"]
    assert any(k in body for k in ("field", "step", "line")), body
    json.dumps(body, allow_nan=False)


def time_bound(size: int) -> float:
    # The goal is 0.5 s a MB (make bench); 4x that, and a floor. It catches work that grows
    # faster than the bytes (a quadratic check took 7 s on 40,000 path parts), timed as this
    # thread's CPU: the wall clock of a shared 2-core machine swings several times over.
    return 2.0 + 2.0 * size / MB


@settings(HOSTILE, suppress_health_check=SLOW)
@given(packages())
def test_any_package_is_accepted_whole_or_refused_naming_the_fault(data):
    started = time.thread_time()
    try:
        checked = validate_package(data, 50 * MB, 500 * MB)
    except ApiError as e:
        a_refusal(e)
        checked = None
    elapsed = time.thread_time() - started
    assert elapsed < time_bound(len(data)), f"{elapsed:.2f} s for {len(data)} bytes"
    # Memory again, apart: tracemalloc slows what it traces several times over.
    tracemalloc.start()
    try:
        validate_package(data, 50 * MB, 500 * MB)
    except ApiError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    # Holding the package, a flow file (5 MB at most) and a manifest (1 MB): never the unpacked size.
    assert peak < 3 * len(data) + 24 * MB, f"peak {peak} bytes"
    if checked is not None:
        # The file checked is the file the task runs: same reader, same bytes.
        with tempfile.TemporaryDirectory() as target:
            _extract(io.BytesIO(data), target, "property.tar.gz")
            with open(f"{target}/{checked.manifest.flow_file}", "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == checked.source_sha256


@settings(HOSTILE, suppress_health_check=SLOW)
@given(trigger_bodies())
def test_any_trigger_body_becomes_a_strict_input_within_limits_or_a_4xx(text):
    try:
        body = json_body(text, required=False)
        values = convert_parameters(SPECS, body.get("parameters"))
        check_input_size(values)
    except ApiError as e:
        a_refusal(e)
        assert e.field == "body" or e.field.startswith("parameters"), e.to_dict()
        return
    seed = json.dumps(execution_input(values), allow_nan=False)  # what Step Functions gets
    assert len(seed.encode()) <= limits.MAX_EXECUTION_INPUT_BYTES
    assert json.loads(json.loads(seed)["Parameters"]) == json.loads(json.dumps(values))
