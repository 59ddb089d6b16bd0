"""Encryption files: phone column -> link tokens and back (admin only), other columns kept, download."""

from __future__ import annotations

from typing import Any

from cleaning_kit import GB_1, US_1, csv_bytes, read_csv


def _upload(client: Any, users: Any, data: bytes, name: str) -> int:
    response = client.post("/api/cleaning/files", headers=users.headers("operator"),
                           files={"file": (name, data, "text/csv")}, data={"purpose": "encrypt"})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _run(client: Any, users: Any, file_id: int, direction: str, role: str) -> Any:
    return client.post(f"/api/cleaning/files/{file_id}/{direction}", headers=users.headers(role), json={})


def test_encrypt_then_decrypt(client: Any, users: Any, inline_jobs: list[str]) -> None:
    rows = [["id", "phone", "note"], ["1", "07400 123456", "=2+3"], ["2", US_1, "b"], ["3", "nope", "c"]]
    file_id = _upload(client, users, csv_bytes(rows), "people.csv")
    run = _run(client, users, file_id, "encrypt", "operator")
    assert run.status_code == 202, run.text
    run = client.get(f"/api/cleaning/runs/{run.json()['id']}", headers=users.headers("viewer")).json()
    assert run["status"] == "succeeded", run
    assert run["stats"] == {"rows": 3, "converted": 2, "failed": 1}
    out = client.get(f"/api/cleaning/runs/{run['id']}/download/output", headers=users.headers("operator"))
    assert 'filename="encrypted_people.csv"' in out.headers["content-disposition"]
    table = read_csv(out.content)
    assert table[0] == ["id", "phone", "note", "error"]
    assert [r[0] for r in table[1:]] == ["1", "2", "3"]
    assert table[1][2] == "'=2+3"
    assert table[1][1].startswith("v1.") and table[2][1].startswith("v1.") and table[1][1] != table[2][1]
    assert table[3][1:] == ["", "c", "invalid number: not_a_number"]

    tokens = [["phone", "id"], [table[1][1], "1"], [table[2][1], "2"], ["v1.k2.broken", "3"]]
    token_file = _upload(client, users, csv_bytes(tokens), "tokens.csv")
    assert _run(client, users, token_file, "decrypt", "operator").status_code == 403
    run = _run(client, users, token_file, "decrypt", "admin").json()
    assert client.get(f"/api/cleaning/runs/{run['id']}/download/output",
                      headers=users.headers("operator")).status_code == 403
    back = client.get(f"/api/cleaning/runs/{run['id']}/download/output", headers=users.headers("admin"))
    assert 'filename="decrypted_tokens.csv"' in back.headers["content-disposition"]
    table = read_csv(back.content)
    assert table[1][:2] == [GB_1, "1"] and table[2][:2] == [US_1, "2"]
    assert table[3][0] == "" and table[3][2]  # the broken token is named, not guessed


def test_headerless_token_column(client: Any, users: Any, inline_jobs: list[str]) -> None:
    from phoneops.numbers.vault import get_vault

    token = get_vault().cipher.encrypt(US_1)
    file_id = _upload(client, users, f"{token}\n{token}\n".encode(), "plain.txt")
    run = _run(client, users, file_id, "decrypt", "admin").json()
    back = client.get(f"/api/cleaning/runs/{run['id']}/download/output", headers=users.headers("admin"))
    assert read_csv(back.content) == [[US_1, ""], [US_1, ""]]


def test_one_row_headerless_token_file(client: Any, users: Any, inline_jobs: list[str]) -> None:
    """A file of one token and nothing else is one row to decrypt, not a header with no data (issue 13)."""
    from phoneops.numbers.vault import get_vault

    file_id = _upload(client, users, f"{get_vault().cipher.encrypt(GB_1)}\n".encode(), "one.txt")
    detail = client.get(f"/api/cleaning/files/{file_id}", headers=users.headers("admin")).json()
    assert detail["has_header"] is False
    run = _run(client, users, file_id, "decrypt", "admin").json()
    back = client.get(f"/api/cleaning/runs/{run['id']}/download/output", headers=users.headers("admin"))
    assert read_csv(back.content) == [[GB_1, ""]]


def test_decrypting_an_encrypted_file_keeps_one_error_column(client: Any, users: Any, inline_jobs: list[str]) -> None:
    rows = [["id", "phone"], ["1", "07400 123456"], ["2", "nope"]]
    run = _run(client, users, _upload(client, users, csv_bytes(rows), "people.csv"), "encrypt", "operator").json()
    encrypted = client.get(f"/api/cleaning/runs/{run['id']}/download/output", headers=users.headers("operator"))
    assert read_csv(encrypted.content)[0] == ["id", "phone", "error"]
    again = _upload(client, users, encrypted.content, "encrypted_people.csv")
    run = _run(client, users, again, "decrypt", "admin").json()
    back = read_csv(client.get(f"/api/cleaning/runs/{run['id']}/download/output",
                               headers=users.headers("admin")).content)
    assert back[0] == ["id", "phone", "error"]  # not id, phone, error, error
    assert back[1] == ["1", GB_1, ""]
    assert back[2][:2] == ["2", ""] and back[2][2] == "token is empty"  # this run's reason, in the same column


def test_original_tokens_with_padding_open(client: Any, users: Any, inline_jobs: list[str],
                                           monkeypatch: Any) -> None:
    """Original-format tokens that gained `=` padding open; wrong padding is named, not guessed."""
    import base64
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from phoneops.numbers.vault import get_vault
    from phoneops.settings import reset_settings_cache

    key = os.urandom(32)
    monkeypatch.setenv("AES_KEY", base64.urlsafe_b64encode(key).decode())
    reset_settings_cache()
    get_vault.cache_clear()
    nonce = os.urandom(12)
    padded = base64.urlsafe_b64encode(nonce + AESGCM(key).encrypt(nonce, b"447400123456", None)).decode()
    assert padded.endswith("==")  # 40 bytes: two padding characters
    rows = [["token"], [padded], [padded.rstrip("=")], [padded + "="]]
    file_id = _upload(client, users, csv_bytes(rows), "legacy.csv")
    run = client.get(f"/api/cleaning/runs/{_run(client, users, file_id, 'decrypt', 'admin').json()['id']}",
                     headers=users.headers("admin")).json()
    assert run["stats"] == {"rows": 3, "converted": 2, "failed": 1}
    back = read_csv(client.get(f"/api/cleaning/runs/{run['id']}/download/output",
                               headers=users.headers("admin")).content)
    assert back[1] == ["447400123456", ""] and back[2] == ["447400123456", ""]
    assert back[3][0] == "" and "base64" in back[3][1]
    reset_settings_cache()
    get_vault.cache_clear()


def test_purpose_is_checked_when_listing(client: Any, users: Any) -> None:
    """`purpose=encryption` (the page's word) lists the encryption files; an unknown purpose is a 422, never []."""
    file_id = _upload(client, users, b"phone\n07400 123456\n", "enc.csv")
    viewer = users.headers("viewer")
    listed = client.get("/api/cleaning/files?purpose=encryption", headers=viewer)
    assert listed.status_code == 200 and [f["id"] for f in listed.json()] == [file_id]
    assert [f["id"] for f in client.get("/api/cleaning/files?purpose=encrypt", headers=viewer).json()] == [file_id]
    assert client.get("/api/cleaning/files?purpose=clean", headers=viewer).json() == []
    wrong = client.get("/api/cleaning/files?purpose=encrpyt", headers=viewer)
    assert wrong.status_code == 422 and "purpose must be one of clean, encrypt" in wrong.json()["error"]["message"]
    refused = client.post("/api/cleaning/files", headers=users.headers("operator"), data={"purpose": "hash"},
                          files={"file": ("x.csv", b"phone\n07400 123456\n", "text/csv")})
    assert refused.status_code == 422
    assert len(client.get("/api/cleaning/files?purpose=encrypt", headers=viewer).json()) == 1  # nothing stored
