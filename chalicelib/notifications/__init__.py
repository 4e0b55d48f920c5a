"""Run-end notifications: what a deployment asked for (config.py) and their delivery (deliver.py)."""
