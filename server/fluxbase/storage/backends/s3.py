"""The S3 backend, through aiobotocore: streaming both ways, multipart for large bodies.

Blobs are keys `<prefix><blob>` in one S3 bucket (storage.s3.bucket); the
bucket is created at start-up when it does not exist (useful with MinIO or
moto, harmless on AWS where it exists).  A body up to PART_SIZE goes in one
PutObject; a larger one as a multipart upload of PART_SIZE parts, so at most
one part is held in memory.  A multipart upload that a crash abandoned is
aborted by the reaper.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from fluxbase.config import S3Config
from fluxbase.storage.backends.base import (
    CHUNK_SIZE,
    BackendUnavailable,
    BlobNotFound,
    WrittenBlob,
    is_blob_name,
)

log = logging.getLogger("fluxbase.storage.s3")

PART_SIZE = 8 * 1024 * 1024  # S3's minimum is 5 MiB; one part at a time is held in memory
PREFIX = "fluxbase/objects/"


class S3Backend:
    name = "s3"

    def __init__(self, config: S3Config) -> None:
        if not config.bucket:
            raise ValueError("storage.s3.bucket is required with provider s3")
        self.config = config
        self.bucket = config.bucket
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def start(self) -> None:
        endpoint = self.config.endpoint
        if endpoint and "://" not in endpoint:
            endpoint = "https://" + endpoint
        session = get_session()
        self._client = await self._stack.enter_async_context(
            session.create_client(
                "s3",
                region_name=self.config.region,
                endpoint_url=endpoint or None,
                aws_access_key_id=self.config.access_key,
                aws_secret_access_key=self.config.secret_key,
                config=AioConfig(
                    s3={"addressing_style": "path" if self.config.force_path_style else "auto"},
                    retries={"max_attempts": 3, "mode": "standard"},
                    # Checksums only where S3 demands them: TLS and TCP already guard the bytes,
                    # and a CRC over every part costs CPU on the request path.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    max_pool_connections=20,
                ),
            )
        )
        try:
            await self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if self.config.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.config.region}
            await self._client.create_bucket(**kwargs)

    async def close(self) -> None:
        await self._stack.aclose()

    def _key(self, blob: str) -> str:
        if not is_blob_name(blob):
            raise ValueError(f"not a blob name: {blob!r}")
        return PREFIX + blob

    async def write(self, blob: str, chunks: AsyncIterator[bytes], size_hint: int | None) -> WrittenBlob:
        key = self._key(blob)
        pending: list[bytes] = []  # joined once per part: one copy of the bytes, not one per chunk
        pending_size = 0
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []

        async def send_part() -> None:
            nonlocal upload_id, pending, pending_size
            if upload_id is None:
                created = await self._client.create_multipart_upload(Bucket=self.bucket, Key=key)
                upload_id = created["UploadId"]
            body = b"".join(pending)
            pending, pending_size = [], 0
            answer = await self._client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1, Body=body
            )
            parts.append({"PartNumber": len(parts) + 1, "ETag": answer["ETag"]})

        try:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= PART_SIZE:
                    await send_part()
            if upload_id is None:
                await self._client.put_object(Bucket=self.bucket, Key=key, Body=b"".join(pending))
            else:
                if pending:
                    await send_part()
                await self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException as exc:
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            if isinstance(exc, BotoCoreError | ClientError):
                log.warning("s3 write failed", extra={"reason": str(exc)})
                raise BackendUnavailable(str(exc)) from exc
            raise
        return WrittenBlob(size, f'"{digest.hexdigest()}"')

    async def read(self, blob: str, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            answer = await self._client.get_object(
                Bucket=self.bucket, Key=self._key(blob), Range=f"bytes={start}-{end}"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobNotFound(blob) from exc
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return _empty()
            raise BackendUnavailable(str(exc)) from exc
        except BotoCoreError as exc:
            raise BackendUnavailable(str(exc)) from exc
        return _stream(answer["Body"])

    async def copy(self, source: str, target: str) -> None:
        try:
            await self._client.copy_object(
                Bucket=self.bucket,
                Key=self._key(target),
                CopySource={"Bucket": self.bucket, "Key": self._key(source)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobNotFound(source) from exc
            raise BackendUnavailable(str(exc)) from exc

    async def delete(self, blobs: list[str]) -> None:
        for start in range(0, len(blobs), 1000):
            batch = blobs[start : start + 1000]
            await self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._key(b)} for b in batch], "Quiet": True},
            )

    async def stale_blobs(self, older_than: float) -> list[str]:
        cutoff = time.time() - older_than
        found: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=PREFIX):
            for item in page.get("Contents", []):
                blob = item["Key"][len(PREFIX) :]
                if is_blob_name(blob) and item["LastModified"].timestamp() < cutoff:
                    found.append(blob)
        return found

    async def reap_incomplete(self, older_than: float) -> int:
        cutoff = datetime.fromtimestamp(time.time() - older_than, UTC)
        answer = await self._client.list_multipart_uploads(Bucket=self.bucket, Prefix=PREFIX)
        removed = 0
        for upload in answer.get("Uploads", []):
            if upload["Initiated"] < cutoff:
                with contextlib.suppress(ClientError):
                    await self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
        return removed


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""


async def _stream(body: Any) -> AsyncIterator[bytes]:
    try:
        while True:
            chunk = await body.read(CHUNK_SIZE)
            if not chunk:
                return
            yield chunk
    finally:
        body.close()
