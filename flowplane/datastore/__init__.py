"""Artifact and metadata storage shared by local runs, Batch tasks and the Client API."""
