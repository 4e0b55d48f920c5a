"""Metaflow's data tools: `S3`, a run-scoped object store in the datastore (s3.py)."""
