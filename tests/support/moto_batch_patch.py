"""The moto fixes for Step Functions' Batch `submitJob.sync` (defects 1-3).

They live in flowplane/local/moto_patches.py, with the reason for each,
because the embedded control plane (`flowplane local`) needs them too.
"""

from flowplane.local.moto_patches import patched_moto_batch  # noqa: F401
