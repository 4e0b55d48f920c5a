"""Per-step Python dependencies: `@pypi`, `@pypi_base`, `@conda`, `@conda_base`.

On the client, at `run` and `step-functions create`, each distinct environment a step
asks for is resolved once with uv into a lock (exact versions, the sha256 of every
file: `resolve.py`); the locks travel in the manifest (and so in the code package) or,
for a local run, in the run's folder. A task of such a step runs in a virtual
environment built from its lock and nothing else: `cache.py` builds and keeps it under
~/.flowplane/envs by the lock's hash, `bucket.py` shares it between production tasks as
an archive in the stack's bucket, and `enter.py` starts the task in it. The control
plane only reads the locks; it never installs or runs anything of them.
"""
