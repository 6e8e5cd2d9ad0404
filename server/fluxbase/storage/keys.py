"""Bucket ids and object keys: what is accepted, normalised, and why the rest is refused.

Keys never become filesystem paths (blobs are named by version, see
backends/), but they are refused all the same when they could mean
something else to a client, a proxy or a later tool: dot segments,
absolute paths, backslashes, NUL and control characters, empty segments,
and more than MAX_KEY_BYTES of UTF-8.  A refused key is a 400 before any
byte of a body is read.
"""

from __future__ import annotations

import re
import unicodedata

from fluxbase.storage import errors

MAX_KEY_BYTES = 1024
MAX_BUCKET_ID = 100
_BUCKET_ID = re.compile(r"^[A-Za-z0-9_!\-.*'() &$@=;:+,?]+$")


def object_key(raw: str) -> str:
    """The normalised (NFC) key, or a StorageError naming what is wrong with it."""
    if not raw:
        raise errors.invalid_key(raw, "empty")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or 0x80 <= ord(ch) < 0xA0 for ch in raw):
        raise errors.invalid_key(raw, "control characters are not allowed")
    if "\\" in raw:
        raise errors.invalid_key(raw, "backslashes are not allowed")
    key = unicodedata.normalize("NFC", raw)
    if key.startswith("/"):
        raise errors.invalid_key(raw, "absolute paths are not allowed")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise errors.invalid_key(raw, f"longer than {MAX_KEY_BYTES} bytes")
    for segment in key.split("/"):
        if segment in (".", ".."):
            raise errors.invalid_key(raw, "'.' and '..' segments are not allowed")
        if segment == "":
            raise errors.invalid_key(raw, "empty path segments are not allowed")
        if segment != segment.strip() and segment.strip() in (".", ".."):
            raise errors.invalid_key(raw, "'.' and '..' segments are not allowed")
    return key


def key_prefix(raw: str) -> str:
    """A list prefix: '' or a folder path; a trailing '/' is allowed and added."""
    if raw in ("", "/"):
        return ""
    key = object_key(raw.rstrip("/"))
    return key + "/"


def bucket_id(raw: str) -> str:
    if not raw or len(raw) > MAX_BUCKET_ID:
        raise errors.invalid_bucket_name(f"1 to {MAX_BUCKET_ID} characters")
    if raw in (".", "..") or not _BUCKET_ID.match(raw):
        raise errors.invalid_bucket_name("letters, digits and _!-.*'() &$@=;:+,? only")
    return raw
