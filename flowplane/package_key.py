"""Where a package is kept: `packages/<sha256>.tar.gz` in the control plane's bucket.

The SDK's package is named by its digest, the control plane stores it under
this key and its compile function subscribes to objects created under the
prefix. A leaf, so that the subscription costs app.py nothing when it loads.
"""

from __future__ import annotations

from typing import Optional

PACKAGE_PREFIX = "packages/"
PACKAGE_SUFFIX = ".tar.gz"


def package_key(sha256: str) -> str:
    return f"{PACKAGE_PREFIX}{sha256}{PACKAGE_SUFFIX}"


def package_sha256(key: str) -> Optional[str]:
    """What `package_key` made `key` from (unchecked); None for a key of anything else."""
    if not key.startswith(PACKAGE_PREFIX) or not key.endswith(PACKAGE_SUFFIX):
        return None
    return key[len(PACKAGE_PREFIX) : -len(PACKAGE_SUFFIX)]
