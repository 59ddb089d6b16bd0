"""Stored files in an S3-compatible bucket (AWS S3, MinIO, Ceph; moto's server in tests).

Object key = S3_PREFIX + file id (a UUID, never a user's name). Uploads go from a local temp file through
boto3's managed transfer (multipart above the threshold); downloads are streamed in chunks. Every S3 failure
becomes a phoneops error naming the bucket: a missing object is NotFound, the rest is a clear 502/503; no
credential ever appears in a message.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast
from urllib.parse import urlsplit, urlunsplit

import structlog

from phoneops.core.errors import AppError, NotFound, ProviderNotConfigured, UpstreamError
from phoneops.core.models import StoredFile
from phoneops.core.storage_backend import CHUNK, Storage

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from phoneops.settings import Settings

log = structlog.get_logger("phoneops.core.storage")

MB = 1024 * 1024
# Multipart above 16 MB in 16 MB parts (S3 allows 10,000 parts: files up to ~160 GB), 4 parts in flight.
MULTIPART_THRESHOLD = 16 * MB
MULTIPART_CHUNKSIZE = 16 * MB
MAX_CONCURRENCY = 4

_MISSING_OBJECT = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
           "InvalidToken", "ExpiredToken", "AccountProblem"}

_clients: dict[tuple[object, ...], S3Client] = {}
_clients_lock = threading.Lock()


def _client(endpoint: str | None, region: str, key_id: str | None, secret: str | None) -> S3Client:
    """One client per process and configuration: boto3 clients are thread-safe, creating them is not."""
    cache_key = (os.getpid(), endpoint, region, key_id, secret)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session(
                aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=region
            )  # without keys: boto3's default credential chain (environment, profile, instance role)
            config = Config(
                retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=60,
                max_pool_connections=max(10, MAX_CONCURRENCY * 4),
                # S3-compatible services (MinIO, Ceph, moto) serve buckets as paths on their own endpoint.
                s3={"addressing_style": "path"} if endpoint else None,
            )
            client = session.client("s3", endpoint_url=endpoint, config=config)
            _clients[cache_key] = client
        return client


def reset_clients() -> None:
    """Forget cached clients (tests that change the configuration)."""
    with _clients_lock:
        _clients.clear()


def _public_endpoint(endpoint: str | None) -> str:
    """The endpoint for messages: scheme, host, port and path only (no user info, no query)."""
    if not endpoint:
        return "AWS S3"
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class S3Storage(Storage):
    """Files as objects `prefix + id` in `bucket`; temp files under DATA_DIR/tmp."""

    def __init__(self, client: S3Client, bucket: str, prefix: str, scratch: Path, endpoint: str | None = None) -> None:
        self.client, self.bucket, self.prefix, self._scratch = client, bucket, prefix, scratch
        self.endpoint = endpoint

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        if not settings.s3_bucket:
            raise ProviderNotConfigured("object storage (S3)", ["S3_BUCKET"])
        endpoint = settings.s3_endpoint_url or settings.aws_endpoint_url
        secret = settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
        client = _client(endpoint, settings.aws_region, settings.aws_access_key_id, secret)
        return cls(client, settings.s3_bucket, settings.s3_prefix, settings.data_dir / "tmp", endpoint)

    def key_for(self, file_id: str) -> str:
        return f"{self.prefix}{file_id}"

    def scratch_dir(self) -> Path:
        return self._scratch

    # --- errors --------------------------------------------------------------------------------

    def _error(self, exc: BaseException, file_id: str | None = None) -> AppError:
        """A phoneops error for a boto3/botocore failure; names the bucket, never a credential."""
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, ClientError):
            cause = cause.__cause__ or cause.__context__  # S3UploadFailedError wraps the ClientError
        where = f"object storage bucket '{self.bucket}'"
        details = {"bucket": self.bucket, "endpoint": _public_endpoint(self.endpoint)}
        if isinstance(cause, ClientError):
            code = str(cause.response.get("Error", {}).get("Code", "")) or str(
                cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "unknown"))
            if code in _MISSING_OBJECT and file_id is not None:
                return NotFound(f"file {file_id} is missing from storage")
            if code == "NoSuchBucket":
                message = f"{where} does not exist (check S3_BUCKET and S3_ENDPOINT_URL)"
            elif code in _DENIED:
                message = f"access to {where} was denied ({code}): check the credentials and the bucket policy"
            else:
                message = f"{where} answered with an error ({code})"
            return UpstreamError(message, code="storage_error", details={**details, "error": code})
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return ProviderNotConfigured("object storage (S3)", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
        if isinstance(exc, ConnectionError | HTTPClientError):
            return UpstreamError(f"{where} at {details['endpoint']} cannot be reached", code="storage_unavailable",
                                 details=details)
        return UpstreamError(f"{where} failed: {type(exc).__name__}", code="storage_error", details=details)

    def _failed(self, action: str, exc: BaseException, file_id: str | None) -> AppError:
        error = self._error(exc, file_id)
        if not isinstance(error, NotFound):
            log.warning("storage.s3.error", action=action, bucket=self.bucket, file_id=file_id,
                        error=error.code, reason=error.message)
        return error

    # --- the backend ---------------------------------------------------------------------------

    def _put(self, tmp: Path, file_id: str, content_type: str | None) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNKSIZE,
                                max_concurrency=MAX_CONCURRENCY)
        extra = {"ContentType": content_type} if content_type else None
        try:
            self.client.upload_file(str(tmp), self.bucket, self.key_for(file_id), ExtraArgs=extra, Config=config)
        except Exception as exc:
            raise self._failed("upload", exc, None) from None

    def _open(self, row: StoredFile) -> BinaryIO:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key_for(row.id))
        except Exception as exc:
            raise self._failed("download", exc, row.id) from None
        return cast(BinaryIO, answer["Body"])  # a streaming body: read(n) pulls n bytes off the wire

    def _remove(self, file_id: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key_for(file_id))
        except Exception as exc:
            raise self._failed("delete", exc, None) from None

    @contextmanager
    def _local_copy(self, row: StoredFile) -> Iterator[Path]:
        tmp = self._tmp()
        try:
            with self._open(row) as body, tmp.open("wb") as out:
                try:
                    for block in iter(lambda: body.read(CHUNK), b""):
                        out.write(block)
                except AppError:
                    raise
                except Exception as exc:
                    raise self._failed("download", exc, row.id) from None
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)

    def discard(self, row: StoredFile) -> None:
        """Best effort on a failure path: an unreachable bucket must not hide the error being handled."""
        try:
            super().discard(row)
        except AppError as exc:
            log.warning("storage.s3.orphan", bucket=self.bucket, file_id=row.id, reason=exc.message)
