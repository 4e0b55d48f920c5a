"""`get_metadata()`, `metadata(...)` and `default_metadata()`: Metaflow's provider switch.

Metaflow's client reads from one "metadata provider", named `kind@info`
(`local@/path`, `service@https://...`). Here that is the Client API's provider
(provider.py, chosen in selection.py): `metadata()` forces one for the whole
process, as Metaflow's call has a global effect, and `default_metadata()` goes
back to the configured choice.
"""

from __future__ import annotations

import os

from .provider import Provider
from .selection import get_provider, set_provider


class MetadataSpecError(ValueError):
    """`metadata(...)` was given something that names no provider."""


def get_metadata() -> str:
    """Where the Client API reads from, as `kind@location` (Metaflow's get_metadata()).

    Reading local runs and a control plane together (combined.py), it is the control
    plane's `service@<url>`, Metaflow's answer with a metadata service; the datastore
    is read as well (see get_provider().describe())."""
    provider = get_provider()
    own = getattr(provider, "get_metadata", None)
    return own() if callable(own) else provider.describe()


def provider_for(spec: str) -> Provider:
    """The provider `spec` names, in Metaflow's forms.

    `service@<url>` or an `http(s)://` URL: the control plane's API alone.
    `local@<root>`, `s3@s3://bucket/prefix` or a bare path: the datastore at that root
    (a folder holding `.flowplane/` means that `.flowplane/`, as Metaflow's `.metaflow`).
    `local` alone: the default datastore root.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise MetadataSpecError("metadata() takes a string: 'local', 'local@<path>', 'service@<url>' or a URL")
    spec = spec.strip()
    kind, at, info = spec.partition("@")
    if not at:
        kind, info = ("service", spec) if spec.startswith(("http://", "https://")) else ("local", spec)
        if spec == "local":
            info = ""
    if kind == "service":
        if not info.startswith(("http://", "https://")):
            raise MetadataSpecError(f"metadata({spec!r}): a service is named by its URL, e.g. service@https://...")
        from .service import ServiceProvider

        return ServiceProvider(info.rstrip("/"))
    if kind in ("local", "s3"):
        from ..datastore.storage import default_root, storage_for
        from .local import LocalProvider

        root = info or default_root()
        if kind == "s3" and not root.startswith("s3://"):
            raise MetadataSpecError(f"metadata({spec!r}): an s3 datastore is named s3@s3://bucket/prefix")
        nested = os.path.join(root, ".flowplane")
        if not root.startswith("s3://") and os.path.isdir(nested):
            root = nested
        return LocalProvider(storage_for(root))
    raise MetadataSpecError(
        f"metadata({spec!r}): unknown provider {kind!r}; use 'local', 'local@<path>', "
        "'s3@s3://bucket/prefix' or 'service@<url>'"
    )


def metadata(ms: str) -> str:
    """Switch the provider for the whole process (Metaflow's metadata()); returns get_metadata()."""
    set_provider(provider_for(ms))
    return get_metadata()


def default_metadata() -> str:
    """Back to the configured provider (Metaflow's default_metadata()); returns get_metadata()."""
    set_provider(None)
    return get_metadata()
