"""Flowplane's control plane: Chalice routes and event handlers.

Each handler lives in a Blueprint under chalicelib/routes/ and calls one
function in chalicelib/; this file only assembles them.
"""

from chalice import Chalice

from chalicelib.identity import require_iam
from chalicelib.routes import client_api, deploy, events, notifications, recording, runs, schedules

# configure_logs=False: Chalice would take over the "flowplane" logger (its app name) and
# stop it propagating, which also silences the SDK's own "flowplane.*" loggers in the same
# process (the embedded plane). The recorder and reconciler log through Powertools'
# structured Logger (chalicelib/recording/telemetry.py); the other handlers through the
# standard "flowplane.*" loggers.
app = Chalice(app_name="flowplane", configure_logs=False)
# Packages arrive as application/gzip; API Gateway must pass them through as bytes.
for _t in deploy.BINARY_TYPES:
    if _t not in app.api.binary_types:
        app.api.binary_types.append(_t)

app.register_blueprint(deploy.bp)
app.register_blueprint(runs.bp)
app.register_blueprint(recording.bp)
app.register_blueprint(client_api.bp)
app.register_blueprint(events.bp)
app.register_blueprint(schedules.bp)
app.register_blueprint(notifications.bp)


@app.route("/health", methods=["GET"])
def health() -> dict:
    return {"ok": True, "service": "flowplane"}


# Last: every route registered above needs a SigV4 signature except the open ones.
require_iam(app)
