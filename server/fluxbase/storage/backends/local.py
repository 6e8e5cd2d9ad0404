"""The local-disk backend: temp file, fsync, rename into place; reads with the kernel's help.

Layout under the root: `objects/<2 hex>/<blob>` for stored blobs and
`tmp/<pid>-<random>.part` for writes in progress.  The pid in a temp name
lets the reaper remove the leftovers of a process that died (SIGKILL, power
loss) at start-up without touching a live sibling worker's writes.  Every
path is built from a validated blob name and checked to resolve inside the
root.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from fluxbase.storage.backends.base import (
    CHUNK_SIZE,
    BlobNotFound,
    WrittenBlob,
    is_blob_name,
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalBackend:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"

    async def start(self) -> None:
        # Folders appear with the first write: a server that never stores a file leaves no trace.
        return None

    async def close(self) -> None:
        return None

    def path(self, blob: str) -> Path:
        if not is_blob_name(blob):
            raise ValueError(f"not a blob name: {blob!r}")
        path = (self.objects / blob[:2] / blob).resolve()
        if not path.is_relative_to(self.objects):
            raise ValueError("blob path escapes the storage root")
        return path

    async def write(self, blob: str, chunks: AsyncIterator[bytes], size_hint: int | None) -> WrittenBlob:
        target = self.path(blob)
        temp = self.tmp / f"{os.getpid()}-{uuid.uuid4().hex}.part"
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        loop = asyncio.get_running_loop()
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                view = memoryview(chunk)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            await loop.run_in_executor(None, os.fsync, fd)
            os.close(fd)
            fd = -1
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(temp, target)
            # The rename is durable only once the directory is synced too.
            await loop.run_in_executor(None, _fsync_dir, target.parent)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        return WrittenBlob(size, f'"{digest.hexdigest()}"')

    async def read(self, blob: str, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            handle = open(self.path(blob), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError as exc:
            raise BlobNotFound(blob) from exc
        return _read_file(handle, start, end)

    async def copy(self, source: str, target: str) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in await self.read(source, 0, 2**63 - 1):
                yield chunk

        await self.write(target, chunks(), None)

    async def delete(self, blobs: list[str]) -> None:
        for blob in blobs:
            with contextlib.suppress(FileNotFoundError):
                self.path(blob).unlink()

    async def stale_blobs(self, older_than: float) -> list[str]:
        cutoff = time.time() - older_than
        found = []
        for path in self.objects.glob("*/*"):
            try:
                if is_blob_name(path.name) and path.stat().st_mtime < cutoff:
                    found.append(path.name)
            except FileNotFoundError:
                continue
        return found

    async def reap_incomplete(self, older_than: float) -> int:
        cutoff = time.time() - older_than
        removed = 0
        for path in self.tmp.glob("*.part"):
            pid_text = path.name.split("-", 1)[0]
            try:
                dead = pid_text.isdigit() and not _pid_alive(int(pid_text))
                if dead or path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _read_file(handle: BinaryIO, start: int, end: int) -> AsyncIterator[bytes]:
    with handle:
        handle.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            chunk = handle.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
