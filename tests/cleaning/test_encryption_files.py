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
