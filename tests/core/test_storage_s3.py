"""Stored files on both backends: local disk and an S3 bucket served by moto over real HTTP on 127.0.0.1.

The same storage API is proved on each backend (big multi-part round trip with checksum, delete, a missing
object, replace_content, local_path cleanup); then the HTTP API with STORAGE_BACKEND=s3 end to end (a cleaning
run whose files live only in the bucket) and a bad configuration (no bucket, no endpoint) failing clearly.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from phoneops.core.errors import NotFound, UpstreamError
from phoneops.core.models import AuditEvent, StoredFile
from phoneops.core.security import SYSTEM
from phoneops.core.storage import LocalStorage, Storage, get_storage

SECRET = "s3-secret-" + "z" * 30  # must never show in an error
BIG = 17 * 1024 * 1024 + 12345  # above the 16 MB multipart threshold: two parts, many download chunks


@dataclass
class Bucket:
    name: str
    client: Any  # a boto3 S3 client of the test's own, to look behind the storage's back
    prefix: str


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _use_s3(monkeypatch: pytest.MonkeyPatch, endpoint: str, bucket: str) -> None:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("STORAGE_BACKEND", "s3")
    monkeypatch.setenv("S3_BUCKET", bucket)
    monkeypatch.setenv("S3_PREFIX", "files/")
    monkeypatch.setenv("S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    reset_settings_cache()


@pytest.fixture
def s3_bucket(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    """STORAGE_BACKEND=s3 on a fresh bucket of moto's server."""
    import boto3

    from phoneops.settings import reset_settings_cache

    name = f"phoneops-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="testing-key-id",
                          aws_secret_access_key=SECRET)
    client.create_bucket(Bucket=name)
    _use_s3(monkeypatch, moto_url, name)
    yield Bucket(name, client, "files/")
    monkeypatch.undo()
    reset_settings_cache()


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, db_url: str) -> Bucket | None:
    """Each storage test runs on local disk and on S3."""
    return request.getfixturevalue("s3_bucket") if request.param == "s3" else None


def _objects(bucket: Bucket) -> dict[str, int]:
    found = bucket.client.list_objects_v2(Bucket=bucket.name)
    return {o["Key"]: o["Size"] for o in found.get("Contents", [])}


def _local_files() -> set[Path]:
    from phoneops.settings import get_settings

    root = get_settings().storage_root
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _scratch_files(store: Storage) -> set[Path]:
    """Temp files of the storage (other tests may leave theirs: compare before and after)."""
    return set(store.scratch_dir().rglob("*")) if store.scratch_dir().exists() else set()


def _stored_bytes(store: Storage, bucket: Bucket | None, file_id: str) -> bytes | None:
    """The bytes where the backend keeps them, read behind the storage's back (None: not there)."""
    if bucket is None:
        assert isinstance(store, LocalStorage)
        path = store.path_for(file_id)
        return path.read_bytes() if path.exists() else None
    try:
        body: bytes = bucket.client.get_object(Bucket=bucket.name, Key=bucket.prefix + file_id)["Body"].read()
    except bucket.client.exceptions.NoSuchKey:
        return None
    return body


def _remove_behind_back(store: Storage, bucket: Bucket | None, file_id: str) -> None:
    if bucket is None:
        assert isinstance(store, LocalStorage)
        store.path_for(file_id).unlink()
    else:
        bucket.client.delete_object(Bucket=bucket.name, Key=bucket.prefix + file_id)


async def _chunked(data: bytes, size: int = 300_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


# --- the storage API on both backends -------------------------------------------------------------


def test_big_file_round_trip_keeps_every_byte(backend: Bucket | None, session: Any, tmp_path: Path) -> None:
    store = get_storage()
    assert (type(store).__name__, bool(backend)) in (("LocalStorage", False), ("S3Storage", True))
    scratch = _scratch_files(store)
    data = os.urandom(BIG)
    sha = hashlib.sha256(data).hexdigest()
    before = _local_files()
    row = asyncio.run(store.save_stream(session, SYSTEM, _chunked(data), kind="upload", original_name="../big.bin",
                                        content_type="application/octet-stream", max_bytes=BIG))
    assert (row.size, row.sha256, row.original_name, row.status) == (BIG, sha, "big.bin", "stored")
    assert _stored_bytes(store, backend, row.id) == data
    if backend is not None:
        assert set(_objects(backend)) == {"files/" + row.id}  # the key is the id: no user's name
        etag = backend.client.head_object(Bucket=backend.name, Key="files/" + row.id)["ETag"]
        assert etag.strip('"').endswith("-2"), etag  # a managed multipart upload of two parts
        assert _local_files() == before  # nothing of it lands under STORAGE_ROOT
    chunks = list(store.iter_bytes(row))
    assert len(chunks) >= 17 and max(len(c) for c in chunks) <= 1024 * 1024  # streamed, never whole
    assert hashlib.sha256(b"".join(chunks)).hexdigest() == sha
    copy = tmp_path / "copy.bin"
    store.copy_to(row, copy)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == sha
    with store.local_path(row) as path:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert path.exists() == (backend is None)  # an S3 download is a temp copy, removed after the block
    assert _scratch_files(store) == scratch


def test_writer_save_bytes_and_delete(backend: Bucket | None, session: Any) -> None:
    store = get_storage()
    with store.writer(session, SYSTEM, kind="result", original_name="out.csv", content_type="text/csv") as (
            out, created):
        out.write(b"phone\n+447400123456\n")
    row = created[0]
    assert (row.size, row.sha256) == (20, hashlib.sha256(b"phone\n+447400123456\n").hexdigest())
    small = store.save_bytes(session, SYSTEM, b"a,b\n", kind="upload", original_name="small.csv")
    assert _stored_bytes(store, backend, row.id) == b"phone\n+447400123456\n"
    if backend is not None:
        info = backend.client.head_object(Bucket=backend.name, Key="files/" + row.id)
        assert info["ContentType"] == "text/csv"
    store.delete(session, SYSTEM, row)
    assert row.status == "deleted"
    assert _stored_bytes(store, backend, row.id) is None
    assert _stored_bytes(store, backend, small.id) == b"a,b\n"  # only that file went
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "file.delete", AuditEvent.target_id == row.id)) == 1
    with pytest.raises(NotFound, match="was deleted"):
        store.open(row)
    store.discard(small)  # a rolled-back file's bytes go without an audit entry
    assert _stored_bytes(store, backend, small.id) is None


@pytest.mark.parametrize("style", ["write", "writelines", "polars", "text", "copyfileobj", "seek back"])
def test_a_written_file_is_stored_with_the_sha256_of_its_bytes(backend: Bucket | None, session: Any,
                                                                style: str) -> None:
    """However a producer writes (polars' writer, a text layer, lines, a copy; or going back to mend what it
    wrote), the stored size and checksum are those of the bytes stored."""
    import io
    import shutil

    import polars as pl

    store = get_storage()
    frame = pl.DataFrame({"phone": [f"+4474001{i:05d}" for i in range(5000)], "note": ["=1+2", "a,b"] * 2500})
    with store.writer(session, SYSTEM, kind="result", original_name="out.csv") as (out, created):
        if style == "write":
            out.write(b"phone,note\n")
            out.write(bytearray(b"+447400123456,x\n"))
            out.write(memoryview(b"+447400123457,y\n"))
        elif style == "writelines":
            out.writelines([b"a\n", b"b\n"] * 1000)
        elif style == "polars":
            out.write(b"header\n")
            frame.write_csv(out, include_header=False)
        elif style == "text":
            text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
            text.write("name,city\nZoë,Zürich\n" * 100)
            text.detach()
        elif style == "copyfileobj":
            shutil.copyfileobj(io.BytesIO(b"x" * 3_000_000), out, 1 << 20)
        else:
            out.write(b"draft,line\n" * 10)
            out.seek(0)
            out.write(b"FINAL")
    row = created[0]
    stored = _stored_bytes(store, backend, row.id)
    assert stored is not None and len(stored) > 0
    assert (row.size, row.sha256) == (len(stored), hashlib.sha256(stored).hexdigest())
    if style == "seek back":
        assert stored.startswith(b"FINAL,line\n")
    if style == "polars":
        assert stored.count(b"\n") == 5001


def test_missing_object_is_not_found(backend: Bucket | None, session: Any) -> None:
    store = get_storage()
    scratch = _scratch_files(store)
    row = store.save_bytes(session, SYSTEM, b"x,y\n1,2\n", kind="upload", original_name="gone.csv")
    _remove_behind_back(store, backend, row.id)
    with pytest.raises(NotFound, match=f"file {row.id} is missing from storage"):
        store.open(row)
    with pytest.raises(NotFound, match="missing from storage"), store.local_path(row):
        pass
    with pytest.raises(NotFound, match="missing from storage"):
        list(store.iter_bytes(row))
    assert _scratch_files(store) == scratch


def test_replace_content_keeps_the_id(backend: Bucket | None, session: Any, tmp_path: Path) -> None:
    store = get_storage()
    row = store.save_bytes(session, SYSTEM, b"phone\n+447400123456\n+447825123456\n", kind="upload",
                           original_name="list.csv", content_type="text/csv")
    source = tmp_path / "rewritten.csv"
    source.write_bytes(b"phone\n+447825123456\n")
    store.replace_content(session, row, source)
    assert not source.exists()  # moved in
    assert (row.size, row.sha256) == (20, hashlib.sha256(b"phone\n+447825123456\n").hexdigest())
    assert b"".join(store.iter_bytes(row)) == b"phone\n+447825123456\n"
    assert _stored_bytes(store, backend, row.id) == b"phone\n+447825123456\n"
    if backend is not None:
        assert set(_objects(backend)) == {"files/" + row.id}
    store.delete(session, SYSTEM, row)
    again = tmp_path / "again.csv"
    again.write_bytes(b"x")
    with pytest.raises(NotFound):
        store.replace_content(session, row, again)


def test_local_paths_are_removed_after_use(backend: Bucket | None, session: Any) -> None:
    store = get_storage()
    scratch = _scratch_files(store)
    row = store.save_bytes(session, SYSTEM, b"imei\n356938035643809\n", kind="upload", original_name="i.csv")
    used: list[Path] = []

    def failing_reader() -> None:
        with store.local_path(row) as path:
            used.append(path)
            assert path.read_bytes() == b"imei\n356938035643809\n"
            raise RuntimeError("a reader failed")

    with pytest.raises(RuntimeError, match="a reader failed"):
        failing_reader()
    assert used[0].exists() == (backend is None)
    held = store.session_local_path(session, row)  # stays readable until the transaction ends
    session.flush()
    assert held.read_bytes() == b"imei\n356938035643809\n"
    session.commit()
    assert held.exists() == (backend is None)
    assert _scratch_files(store) == scratch


# --- S3 failures: clear errors, nothing left behind -----------------------------------------------


def test_missing_bucket_is_a_clear_error_and_leaves_no_row(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, client: Any, users: Any, session: Any
) -> None:
    from phoneops.settings import reset_settings_cache

    headers = users.headers("operator")
    _use_s3(monkeypatch, moto_url, "no-such-bucket-here")
    scratch = _scratch_files(get_storage())
    try:
        up = client.post("/api/files", files={"file": ("a.csv", b"a,b\n1,2\n", "text/csv")}, headers=headers)
        assert up.status_code == 502, up.text
        error = up.json()["error"]
        assert error["code"] == "storage_error"
        assert "'no-such-bucket-here' does not exist" in error["message"]
        assert SECRET not in up.text and "testing-key-id" not in up.text
        cleaning = client.post("/api/cleaning/files", files={"file": ("l.csv", b"phone\n07400123456\n", "text/csv")},
                               headers=headers)
        assert cleaning.status_code == 502 and "no-such-bucket-here" in cleaning.json()["error"]["message"]
        with pytest.raises(UpstreamError, match="no-such-bucket-here"):
            get_storage().save_bytes(session, SYSTEM, b"x", kind="upload", original_name="x.csv")
        session.rollback()
        assert session.scalar(select(func.count()).select_from(StoredFile)) == 0
        assert _scratch_files(get_storage()) == scratch
    finally:
        monkeypatch.undo()
        reset_settings_cache()


def test_unreachable_endpoint_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.settings import reset_settings_cache
    from support import free_port

    _use_s3(monkeypatch, f"http://user:pw@127.0.0.1:{free_port()}", "phoneops-files")
    try:
        row = StoredFile(id=str(uuid.uuid4()), kind="upload", original_name="a.csv", status="stored", size=1)
        with pytest.raises(UpstreamError) as failure:
            get_storage().open(row)
        assert failure.value.code == "storage_unavailable"
        assert "'phoneops-files'" in failure.value.message and "cannot be reached" in failure.value.message
        assert "pw" not in str(failure.value.to_dict()) and SECRET not in str(failure.value.to_dict())
    finally:
        monkeypatch.undo()
        reset_settings_cache()


def test_no_credentials_anywhere_names_the_settings(moto_url: str, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    from phoneops.core.errors import ProviderNotConfigured
    from phoneops.settings import reset_settings_cache

    _use_s3(monkeypatch, moto_url, "phoneops-files")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))  # boto3's chain finds nothing
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    reset_settings_cache()
    try:
        row = StoredFile(id=str(uuid.uuid4()), kind="upload", original_name="a.csv", status="stored", size=1)
        with pytest.raises(ProviderNotConfigured, match="AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"):
            get_storage().open(row)
    finally:
        monkeypatch.undo()
        reset_settings_cache()


# --- end to end through the HTTP API on S3 --------------------------------------------------------


def test_cleaning_run_over_http_keeps_its_files_in_the_bucket(
    s3_bucket: Bucket, client: Any, users: Any, inline_jobs: list[str]
) -> None:
    operator = users.headers("operator")
    local_before, scratch = _local_files(), _scratch_files(get_storage())
    rows = "name,phone\nann,07400 123456\nbob,+14155552671\ncat,not a number\ndan,+44 7400 123456\n"
    up = client.post("/api/cleaning/files", headers=operator, data={"region": "GB"},
                     files={"file": ("My List.csv", rows.encode(), "text/csv")})
    assert up.status_code == 201, up.text
    file_id = up.json()["id"]
    started = client.post(f"/api/cleaning/files/{file_id}/runs", headers=operator, json={"filters": []})
    assert started.status_code == 202, started.text
    run = client.get(f"/api/cleaning/runs/{started.json()['id']}", headers=operator).json()
    assert run["status"] == "succeeded", run
    clean = client.get(f"/api/cleaning/runs/{run['id']}/download/clean", headers=operator)
    assert clean.status_code == 200
    assert clean.text.splitlines() == ["name,phone", "ann,+447400123456", "bob,+14155552671"]
    output = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key="files/" + run["output_file_id"])
    assert output["Body"].read() == clean.content  # the download came from the bucket
    rejected = client.get(f"/api/files/{run['rejected_file_id']}/download", headers=operator)
    assert [line.split(",")[2] for line in rejected.text.splitlines()[1:]] == ["invalid", "duplicate"]
    keys = set(_objects(s3_bucket))
    assert len(keys) == 3 and {"files/" + run["output_file_id"], "files/" + run["rejected_file_id"]} < keys
    assert all(uuid.UUID(key.removeprefix("files/")) for key in keys)
    assert _local_files() == local_before  # nothing landed under STORAGE_ROOT
    assert _scratch_files(get_storage()) == scratch  # temp copies went
    deleted = client.delete(f"/api/cleaning/files/{file_id}", headers=operator)
    assert deleted.status_code == 200, deleted.text
    assert _objects(s3_bucket) == {}


def test_upload_over_the_limit_leaves_nothing_in_the_bucket(
    s3_bucket: Bucket, client: Any, users: Any, session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.settings import get_settings

    monkeypatch.setattr(type(get_settings()), "max_upload_bytes", property(lambda self: 1024))
    scratch = _scratch_files(get_storage())
    up = client.post("/api/files", files={"file": ("big.csv", b"x" * 5000, "text/csv")},
                     headers=users.headers("operator"))
    assert up.status_code == 413 and up.json()["error"]["code"] == "payload_too_large"
    assert session.scalar(select(func.count()).select_from(StoredFile)) == 0
    assert _objects(s3_bucket) == {}
    assert _scratch_files(get_storage()) == scratch
