"""A deployment's notifications (`step-functions create --notify-on-error ...`), as Argo's flags.

The settings are one table item (chalicelib/keys.py: NOTIFY); the Slack webhook URL, a
credential, is a Secrets Manager secret `<prefix>-notify/<deployment>` (outside the
`<prefix>/` names tasks may read), and no read route returns it: GET says only that one
is configured. Changing them takes a deploy's authorization.
"""

from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import urlsplit

from .. import keys
from ..aws import Aws, client_error, error_code
from ..deploy.records import Deployments, now_iso
from ..deploy.tokens import check_authorized
from ..errors import BadRequest

SNS_TOPIC = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
MAX_URL = 2048
# Receivers on this machine, for the embedded plane (a test's webhook on 127.0.0.1).
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def secret_name(aws: Aws, name: str) -> str:
    return f"{aws.settings.resource_prefix}-notify/{name}"


def _check_webhook(url: Any, local: bool) -> str:
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise BadRequest("slack_webhook_url must be a URL", field="slack_webhook_url")
    parts = urlsplit(url)
    plain_local = local and parts.scheme == "http" and parts.hostname in LOCAL_HOSTS
    if not (parts.scheme == "https" or plain_local) or not parts.hostname:
        # Said without the URL: it is a credential.
        raise BadRequest("slack_webhook_url must be an https:// URL (the embedded plane also takes "
                         "http://127.0.0.1)", field="slack_webhook_url")
    return url


def put(aws: Aws, name: str, body: dict[str, Any], caller: Optional[str]) -> dict[str, Any]:
    """PUT /flows/{flow}/notifications: replace the deployment's notifications (none: off)."""
    user = caller or body.get("user")
    if not isinstance(user, str) or not user:
        raise BadRequest("user must name who sets the notifications", field="user")
    head = Deployments(aws.table).live_head(name)
    check_authorized(name, head, user, body.get("authorize"))
    on_error, on_success = body.get("on_error", False), body.get("on_success", False)
    if not isinstance(on_error, bool) or not isinstance(on_success, bool):
        raise BadRequest("on_error and on_success are true or false", field="on_error")
    webhook, topic = body.get("slack_webhook_url"), body.get("sns_topic")
    if webhook is not None:
        webhook = _check_webhook(webhook, aws.settings.stage == "local")
    if topic is not None and (not isinstance(topic, str) or not SNS_TOPIC.match(topic)):
        raise BadRequest("sns_topic must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", field="sns_topic")
    if (on_error or on_success) and webhook is None and topic is None:
        raise BadRequest("--notify-on-error/--notify-on-success need --notify-slack-webhook-url or "
                         "--notify-sns-topic", field="slack_webhook_url")
    if (webhook is not None or topic is not None) and not (on_error or on_success):
        raise BadRequest("a notification destination needs --notify-on-error and/or --notify-on-success",
                         field="on_error")
    secrets = aws.secrets
    if webhook is not None:
        _store_secret(secrets, secret_name(aws, name), webhook)
    else:
        _delete_secret(secrets, secret_name(aws, name))
    aws.table.put({"PK": keys.flow_pk(name), "SK": keys.NOTIFY_SK, "type": "notify", "on_error": on_error,
                   "on_success": on_success, "slack": webhook is not None, "sns_topic": topic,
                   "changed_by": user, "changed_at": now_iso()})
    return view(aws, name)


def clear(aws: Aws, name: str) -> None:
    """A deleted deployment notifies no more, and its webhook goes (delete_flow)."""
    if aws.table.get(keys.flow_pk(name), keys.NOTIFY_SK) is None:
        return
    _delete_secret(aws.secrets, secret_name(aws, name))
    aws.table.put({"PK": keys.flow_pk(name), "SK": keys.NOTIFY_SK, "type": "notify", "on_error": False,
                   "on_success": False, "slack": False, "sns_topic": None, "changed_at": now_iso()})


def get(aws: Aws, name: str) -> dict[str, Any]:
    """The settings as stored; `slack` is whether a webhook is, never the URL."""
    item = aws.table.get(keys.flow_pk(name), keys.NOTIFY_SK) or {}
    return {"on_error": bool(item.get("on_error")), "on_success": bool(item.get("on_success")),
            "slack": bool(item.get("slack")), "sns_topic": item.get("sns_topic")}


def view(aws: Aws, name: str) -> dict[str, Any]:
    """GET /flows/{flow}/notifications."""
    Deployments(aws.table).live_head(name)
    doc = get(aws, name)
    return {"flow": name, "on_error": doc["on_error"], "on_success": doc["on_success"],
            "slack_webhook": "configured (stored as a secret)" if doc["slack"] else None,
            "sns_topic": doc["sns_topic"]}


def webhook_url(aws: Aws, name: str) -> Optional[str]:
    try:
        return aws.secrets.get_secret_value(SecretId=secret_name(aws, name))["SecretString"]
    except client_error() as e:
        if error_code(e) == "ResourceNotFoundException":
            return None
        raise


def _store_secret(secrets: Any, secret: str, value: str) -> None:
    try:
        secrets.create_secret(Name=secret, SecretString=value, Description="flowplane: a deployment's Slack webhook")
    except client_error() as e:
        if error_code(e) != "ResourceExistsException":
            raise
        secrets.put_secret_value(SecretId=secret, SecretString=value)


def _delete_secret(secrets: Any, secret: str) -> None:
    try:
        secrets.delete_secret(SecretId=secret, ForceDeleteWithoutRecovery=True)
    except client_error() as e:
        if error_code(e) != "ResourceNotFoundException":
            raise
