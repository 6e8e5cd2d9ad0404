"""Storage's pure parts: URL signing, ranges, sizes, MIME rules and the error shapes."""

from __future__ import annotations

import time

import asyncpg
import jwt
import pytest

from fluxbase.db.errors import DatabaseUnreachable, PoolTimeout
from fluxbase.storage import errors
from fluxbase.storage.bodies import check_mime, content_disposition, parse_range
from fluxbase.storage.buckets import file_size_limit
from fluxbase.storage.errors import StorageError, from_database
from fluxbase.storage.signing import UrlSigner, expires_in

SECRET = "s" * 40


def test_signed_tokens_are_bound_to_bucket_key_and_operation() -> None:
    signer = UrlSigner(SECRET)
    token = signer.sign("b", "a/c.txt", "download", 60)
    assert signer.verify(token, "b", "a/c.txt", "download").key == "a/c.txt"
    for bucket, key, scope in (
        ("other", "a/c.txt", "download"),
        ("b", "a/d.txt", "download"),
        ("b", "a/c.txt", "upload"),
    ):
        with pytest.raises(StorageError) as refused:
            signer.verify(token, bucket, key, scope)
        assert refused.value.code == "InvalidSignature"
    with pytest.raises(StorageError):
        UrlSigner("t" * 40).verify(token, "b", "a/c.txt", "download")
    # An API JWT signed with the secret itself is not a URL token, and the reverse.
    api_style = jwt.encode({"url": "b/a/c.txt", "scope": "download", "exp": time.time() + 60}, SECRET)
    with pytest.raises(StorageError):
        signer.verify(api_style, "b", "a/c.txt", "download")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, SECRET, algorithms=["HS256"])


def test_signed_tokens_expire() -> None:
    signer = UrlSigner(SECRET)
    token = signer.sign("b", "k", "download", 1)
    expired = jwt.encode(
        {**jwt.decode(token, options={"verify_signature": False}), "exp": int(time.time()) - 5},
        signer._key,
        algorithm="HS256",
    )
    with pytest.raises(StorageError) as refused:
        signer.verify(expired, "b", "k", "download")
    assert refused.value.code == "ExpiredToken"
    upload = signer.verify(signer.sign("b", "k", "upload", 60, owner="u", upsert=True), "b", "k", "upload")
    assert (upload.owner, upload.upsert) == ("u", True)


@pytest.mark.parametrize("value", [0, -1, "x", None, 10**9])
def test_expires_in_bounds(value: object) -> None:
    with pytest.raises(StorageError):
        expires_in(value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=90-500", (90, 99)),
        ("bytes=0-1,5-6", None),
        ("items=0-5", None),
    ],
)
def test_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=9-3", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(StorageError) as refused:
        parse_range(header, 100)
    assert refused.value.http_status == 416 and refused.value.headers["Content-Range"] == "bytes */100"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (0, None),
        (1024, 1024),
        ("20MB", 20 * 1024**2),
        ("30KB", 30 * 1024),
        ("3B", 3),
        ("1gb", 1024**3),
    ],
)
def test_file_size_limits(value: object, expected: int | None) -> None:
    assert file_size_limit(value) == expected


@pytest.mark.parametrize("value", ["lots", "-5MB", True, -1])
def test_bad_file_size_limits(value: object) -> None:
    with pytest.raises(StorageError):
        file_size_limit(value)


def test_mime_rules() -> None:
    check_mime("image/png", None)
    check_mime("image/png; charset=x", ["image/*"])
    check_mime("text/plain", ["image/png", "text/plain"])
    with pytest.raises(StorageError) as refused:
        check_mime("text/html", ["image/*"])
    assert refused.value.http_status == 415 and refused.value.body()["statusCode"] == "415"


def test_content_disposition_quotes_names() -> None:
    value = content_disposition('a"b\\c ü.txt', attachment=True)
    assert value.startswith('attachment; filename="a\'b_c ?.txt"')
    assert "filename*=UTF-8''a%22b%5Cc%20%C3%BC.txt" in value


def test_error_shapes() -> None:
    missing = errors.no_such_key()
    assert missing.http_status == 400
    assert missing.body() == {
        "statusCode": "404",
        "code": "NoSuchKey",
        "error": "not_found",
        "message": "Object not found",
    }
    assert errors.entity_too_large(10).http_status == 413
    assert errors.internal_error().http_status == 500


def test_database_errors_in_storage_words() -> None:
    busy = from_database(PoolTimeout("pool timeout"))
    assert busy is not None and busy.http_status == 429 and busy.headers["Retry-After"] == "1"
    down = from_database(DatabaseUnreachable("connection refused"))
    assert down is not None and down.http_status == 503 and "refused" not in down.message
    rls = from_database(
        asyncpg.exceptions.InsufficientPrivilegeError("new row violates row-level security policy")
    )
    assert rls is not None and rls.body()["statusCode"] == "403"
    assert from_database(ValueError("x")) is None


def test_storage_settings_from_the_environment() -> None:
    from fluxbase.config import load_config

    config = load_config(
        env={
            "DATABASE_URL": "postgresql://localhost/x",
            "FLUXBASE_JWT_SECRET": "0f3c5a9e7d1b2468ace13579bdf02468ace13579bdf0",
            "FLUXBASE_STORAGE_PROVIDER": "s3",
            "FLUXBASE_STORAGE_S3_ENDPOINT": "http://127.0.0.1:9000",
            "FLUXBASE_STORAGE_S3_BUCKET": "files",
            "FLUXBASE_STORAGE_S3_FORCE_PATH_STYLE": "true",
            "FLUXBASE_STORAGE_MAX_FILE_SIZE": "1048576",
        }
    )
    storage = config.storage
    assert (storage.provider, storage.s3.endpoint, storage.s3.bucket) == (
        "s3",
        "http://127.0.0.1:9000",
        "files",
    )
    assert storage.s3.force_path_style is True and storage.max_file_size == 1024 * 1024
