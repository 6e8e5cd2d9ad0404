"""The one interface both storage backends implement, and what they return.

A blob is named by the object's `version` (a random hex id), never by the
user's key: a key cannot reach a filesystem path or an S3 key, a move is a
row update, and an overwrite writes a new blob that the row points at only
once its transaction commits.  Bytes travel as async iterators of chunks in
both directions, so memory does not grow with an object's size.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

CHUNK_SIZE = 1024 * 1024  # read size on the way out; bounded memory per transfer
_BLOB_NAME = re.compile(r"^[0-9a-f]{32}$")


class BlobNotFound(Exception):
    """The blob a row names is not in the backend."""


class BackendUnavailable(Exception):
    """The backend could not be reached or refused the operation; details are in the log."""


def new_blob_name() -> str:
    return uuid.uuid4().hex


def is_blob_name(name: str) -> bool:
    return bool(_BLOB_NAME.match(name))


@dataclass(frozen=True)
class WrittenBlob:
    size: int
    etag: str  # quoted, as HTTP and S3 give it


class Backend(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, blob: str, chunks: AsyncIterator[bytes], size_hint: int | None) -> WrittenBlob:
        """Stores the chunks under `blob`, durably, or raises and leaves nothing visible."""
        ...

    async def read(self, blob: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end (inclusive) of the blob; raises BlobNotFound before the first chunk."""
        ...

    async def copy(self, source: str, target: str) -> None: ...

    async def delete(self, blobs: list[str]) -> None:
        """Removes the blobs; a blob already gone is not an error."""
        ...

    async def stale_blobs(self, older_than: float) -> list[str]:
        """Blob names last written more than `older_than` seconds ago (the reaper's candidates)."""
        ...

    async def reap_incomplete(self, older_than: float) -> int:
        """Removes abandoned partial writes (temp files, multipart uploads); returns how many."""
        ...
