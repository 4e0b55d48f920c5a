"""Notifications end to end on the embedded plane: `step-functions create --notify-on-error
--notify-slack-webhook-url` to a receiver on 127.0.0.1; a failed production run is
announced by the recorder and its message arrives once, naming the step, task and error."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from tests.support.embedded_plane import create, embedded_plane, flow_cli, trigger, wait_for_run
from tests.support.webhook_receiver import webhook_receiver

pytestmark = [pytest.mark.slow, pytest.mark.embedded]

plane = embedded_plane()

FAILING = '''
from flowplane import FlowSpec, Parameter, step


class AlertedFlow(FlowSpec):
    fail = Parameter("fail", default=1)

    @step
    def start(self):
        self.next(self.train)

    @step
    def train(self):
        if self.fail:
            raise ValueError("the training data is empty")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    AlertedFlow()
'''


def test_a_failed_run_sends_one_message_and_a_success_none(plane, tmp_path):
    path = tmp_path / "alerted_flow.py"
    path.write_text(FAILING)
    with webhook_receiver() as hook:
        out = create(path, "--notify-on-error", "--notify-slack-webhook-url", hook.url)
        assert "Notifications: when a production run fails, to Slack." in out and hook.url not in out
        failed = trigger(path)
        assert wait_for_run(plane, "AlertedFlow", failed)["status"] == "FAILED"
        [message] = hook.wait_for(1)
        ok = trigger(path, "--fail", "0")
        assert wait_for_run(plane, "AlertedFlow", ok)["status"] == "SUCCEEDED"
        time.sleep(1.0)
        assert len(hook.received) == 1
    text = message["text"]
    assert f"AlertedFlow run {failed} FAILED" in text
    assert "Failed step: train, task 1." in text and "the training data is empty" in text
    assert f"Flow('AlertedFlow')['{failed}']['train'].task.stderr" in text
    # Redeploying without --notify-* turns them off, as Argo's template does.
    assert "Notifications: off." in create(path)


def test_bad_notify_options_deploy_nothing(plane, tmp_path):
    path = tmp_path / "alerted_flow.py"
    path.write_text(FAILING.replace("AlertedFlow", "UnalertedFlow"))
    runner = CliRunner()
    for args, fragment in (
        (["--notify-on-error"], "need --notify-slack-webhook-url or --notify-sns-topic"),
        (["--notify-sns-topic", "arn:aws:sns:us-east-1:123456789012:t"], "need --notify-on-error"),
    ):
        result = runner.invoke(flow_cli(path), ["step-functions", "create", *args])
        assert result.exit_code != 0 and fragment in result.output, result.output
    from flowplane.api_client import ApiClient, ApiError

    with pytest.raises(ApiError) as e:
        ApiClient(plane.url).deployments("UnalertedFlow")
    assert e.value.status == 404
