"""Storage backends behind one interface (base.Backend): local disk and S3."""

from __future__ import annotations

from pathlib import Path

from fluxbase.config import StorageConfig
from fluxbase.storage.backends.base import Backend


def make_backend(config: StorageConfig, root: Path) -> Backend:
    """The configured backend; `root` is the local storage folder (objects for local, spool for both)."""
    if config.provider == "s3":
        from fluxbase.storage.backends.s3 import S3Backend

        return S3Backend(config.s3)
    from fluxbase.storage.backends.local import LocalBackend

    return LocalBackend(root)
