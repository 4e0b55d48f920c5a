"""Requests that survive a flaky network (issue 19), shown end to end.

The SDK's commands go through a fault-injecting proxy (tests/support/fault_proxy.py) to an
embedded control plane: for 30 % of the requests, seeded, the proxy cuts the
connection before or after the plane handled it, holds the answer past the client's
timeout, or answers 429/503. Every command still succeeds, and the plane acts once
per command: 100 `trigger`s make exactly 100 runs, 20 `create`s make versions 1-20.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from flowplane import sfn_cli
from flowplane.api_client import ApiClient, urllib_transport
from flowplane.api_retry import RetryPolicy
from tests.support.embedded_plane import embedded_plane, flow_cli
from tests.support.fault_proxy import FAULTS, FaultProxy
from tests.support.shared_flows import SHARED_FLOWS

pytestmark = pytest.mark.slow

# One task slot: the 100 runs queue rather than fill the machine; the plane stops the rest.
plane = embedded_plane(vcpus=1)

# Short, so a delay past it costs little; not so short that a plane slowed by its 100 runs
# (and a neighbouring test worker) times out on every try: 0.75 s did, under `make test`.
CLIENT_TIMEOUT = 2.0
FAULT_RATE = 0.3
FLOW = SHARED_FLOWS / "parameter_flow.py"


@pytest.fixture
def proxy(plane, monkeypatch):
    with FaultProxy(plane.url, rate=FAULT_RATE, seed=19, delay=CLIENT_TIMEOUT + 0.3) as p:
        # The commands' client: through the proxy, a short timeout, quick retries (the
        # default policy's shape, scaled down so the test takes seconds, not minutes).
        policy = RetryPolicy(attempts=12, deadline=60, initial=0.02, cap=0.3)
        monkeypatch.setattr(
            sfn_cli, "ApiClient", lambda: ApiClient(p.url, urllib_transport(timeout=CLIENT_TIMEOUT), retry=policy)
        )
        yield p


def _command(*args: str) -> str:
    result = CliRunner().invoke(flow_cli(FLOW), ["step-functions", *args], catch_exceptions=False)
    assert result.exit_code == 0, f"step-functions {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    return result.output


def _executions(plane) -> list[dict]:
    from chalicelib.resource_names import state_machine_name

    machine = state_machine_name(plane.settings.resource_prefix, "ParameterFlow")
    arn = f"arn:aws:states:{plane.region}:{plane.account}:stateMachine:{machine}"
    sfn = plane.session.client("stepfunctions")
    out, kwargs = [], {"stateMachineArn": arn, "maxResults": 1000}
    while True:
        page = sfn.list_executions(**kwargs)
        out += page["executions"]
        if not page.get("nextToken"):
            return out
        kwargs["nextToken"] = page["nextToken"]


def test_creates_and_triggers_through_a_flaky_network_act_once_each(plane, proxy):
    for _ in range(20):
        _command("create")
    versions = ApiClient(plane.url).deployments("ParameterFlow")["versions"]
    assert sorted(v["version"] for v in versions) == list(range(1, 21))

    run_ids = [_command("trigger").strip().splitlines()[-1] for _ in range(100)]
    assert len(set(run_ids)) == 100 and all(r.startswith("sfn-") for r in run_ids)
    executions = _executions(plane)
    assert len(executions) == 100
    assert {f"sfn-{e['name']}" for e in executions} == set(run_ids)

    # The faults really happened, of every kind, at about the rate asked for.
    assert set(proxy.injected) == set(FAULTS), proxy.injected
    assert 0.2 < sum(proxy.injected.values()) / proxy.requests < 0.4
