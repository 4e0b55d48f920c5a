"""Deploying a flow: from an uploaded package to a production state machine.

uploads.py takes the package (POST /packages, POST /compile); rollout.py is the
compile function its arrival in S3 starts. They check the package
(package_check.py), the flow's source against its manifest (source_check.py),
its schedule (schedules.py), images (job_definitions.py) and secrets
(secrets_check.py); compile it (definition.py); and keep the deployment's
records and production pointer (records.py) and its production token
(tokens.py). removal.py deletes a deployment.

Nothing here is imported when app.py loads: the routes import what they use.
"""
