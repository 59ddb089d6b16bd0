"""Configured secrets never reach a log line or a response body, whatever goes wrong.

Every secret setting gets a distinctive value; the providers point at their simulators, which refuse
those (wrong) credentials; then error paths are driven through the API: provider calls and jobs that
fail authentication, bad input, failed logins, an unexpected exception. Everything logged (structlog and
stdlib logging, at DEBUG) and every response body is searched for each secret in plain, base64, hex and
URL-encoded form.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from phoneops.simulators._server import serve_in_thread
from support import login_form

KEY_BYTES = {name: bytes([i]) * 6 + uuid.uuid4().bytes + bytes([i]) * 10
             for i, name in enumerate(("AES_KEYS", "AES_KEY", "BLIND_INDEX_KEY"), start=0x41)}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


SECRETS = {
    "SESSION_SECRET": "session-" + uuid.uuid4().hex + "-Zq9",
    "AES_KEYS": "k7:" + _b64(KEY_BYTES["AES_KEYS"]),
    "AES_KEY": _b64(KEY_BYTES["AES_KEY"]),
    "BLIND_INDEX_KEY": _b64(KEY_BYTES["BLIND_INDEX_KEY"]),
    "VOLUUM_ACCESS_KEY": "volkey-" + uuid.uuid4().hex,
    "ONGAGE_PASSWORD": "ongpw-" + uuid.uuid4().hex,
    "MESSAGEWHIZ_API_KEY": "mwkey-" + uuid.uuid4().hex,
    "HLR_API_KEY": "hlrkey-" + uuid.uuid4().hex,
    "HLR_API_SECRET": "hlrsecret-" + uuid.uuid4().hex,
    "GSM_FUSION_API_KEY": "gsmkey-" + uuid.uuid4().hex.upper(),
    "AWS_SECRET_ACCESS_KEY": "awssecret/" + uuid.uuid4().hex + "+x",
}


def _forms(value: str) -> set[str]:
    """The ways a secret could leak: as is, base64 (both alphabets), hex, URL-encoded; key bytes too."""
    raw = value.encode()
    forms = {value, base64.b64encode(raw).decode().rstrip("="), _b64(raw).rstrip("="), raw.hex(),
             quote(value, safe=""), quote_plus(value)}
    for key in KEY_BYTES.values():
        if _b64(key) in value:
            forms |= {key.hex(), base64.b64encode(key).decode().rstrip("="), _b64(key).rstrip("=")}
    return {f for f in forms if len(f) >= 8}


@pytest.fixture(scope="module")
def simulators() -> Iterator[dict[str, str]]:
    from phoneops.simulators import gsm_fusion, hlr_lookup, messagewhiz, ongage, voluum

    with serve_in_thread(gsm_fusion.create_app(gsm_fusion.GsmFusionSimConfig())) as gsm, \
            serve_in_thread(hlr_lookup.create_app(hlr_lookup.HlrSimConfig())) as hlr, \
            serve_in_thread(messagewhiz.create_app(messagewhiz.MessageWhizSimConfig())) as mw, \
            serve_in_thread(ongage.create_app(ongage.OngageSimConfig())) as og, \
            serve_in_thread(voluum.create_app(voluum.VoluumSimConfig())) as vol:
        yield {"GSM_FUSION_BASE_URL": gsm, "HLR_BASE_URL": hlr, "HLR_BATCH_BASE_URL": hlr,
               "MESSAGEWHIZ_BASE_URL": mw, "ONGAGE_BASE_URL": og, "VOLUUM_BASE_URL": vol}


@pytest.fixture
def secret_app(db_url: str, simulators: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from phoneops.app import create_app
    from phoneops.settings import load_settings, reset_settings_cache

    env = {**SECRETS, **simulators, "LOG_LEVEL": "DEBUG", "LOG_JSON": "true", "DATABASE_URL": db_url,
           "VOLUUM_ACCESS_ID": "vol-id", "ONGAGE_USERNAME": "someone@example.com", "ONGAGE_LIST_ID": "1",
           "ONGAGE_ACCOUNT_CODE": "acc", "GSM_FUSION_USERNAME": "demo", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    yield create_app(load_settings())
    for name in env:
        monkeypatch.delenv(name)
    reset_settings_cache()


def test_secrets_stay_out_of_logs_and_bodies(secret_app: Any, inline_jobs: list[str], users: Any,
                                             caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from phoneops.core import jobs

    caplog.set_level(logging.DEBUG)
    admin = users.headers("admin")
    bodies: list[str] = []
    with TestClient(secret_app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:

        def call(method: str, url: str, **kwargs: Any) -> Any:
            response = client.request(method, url, **kwargs)
            bodies.append(f"{method} {url} -> {response.status_code} {dict(response.headers)} {response.text}")
            return response

        # provider calls that fail authentication at the simulators
        refused = [call("GET", "/api/imei/services", headers=admin), call("GET", "/api/imei/balance", headers=admin),
                   call("POST", "/api/voluum/lookups/refresh", headers=admin),
                   call("GET", "/api/broadcasts/live", headers=admin)]
        assert all(r.status_code >= 400 for r in refused[:1]), [r.text for r in refused]
        # jobs that call providers (run inline) and fail
        call("POST", "/api/ongage/sync", headers=admin)
        call("POST", "/api/voluum/traffic/sync", headers=admin, json={"from": "2026-01-01", "to": "2026-01-02"})
        call("POST", "/api/broadcasts/days", headers=admin, json={"day": "2026-01-01"})
        upload = call("POST", "/api/files", headers=admin, files={"file": ("n.csv", b"phone\n+447911123456\n")})
        lookup = call("POST", "/api/hlr/lookups", headers=admin, json={"file_id": upload.json()["id"]})
        if lookup.status_code < 400:
            call("POST", f"/api/hlr/lookups/{lookup.json()['id']}/confirm", headers=admin)
        call("POST", "/api/imei/orders", headers=admin, json={"imei": "356938035643809", "service_id": "1"})
        call("POST", "/api/numbers/tokens/encrypt", headers=admin, json={"numbers": ["+447911123456"]})
        call("POST", "/api/numbers/tokens/decrypt", headers=admin, json={"tokens": ["not-a-token", "v1.garbage"]})
        # bad input, bad credentials, a forged session cookie
        call("POST", "/api/users", headers=admin, content=b"{not json")
        call("GET", "/api/me", headers={"Authorization": "Bearer po_" + "x" * 40})
        call("POST", "/login", data={"username": "admin-user", "password": "wrong password", **login_form(client)})
        call("GET", "/", cookies={"phoneops_session": "forged." + SECRETS["SESSION_SECRET"]})
        # an unexpected exception whose message carries a secret (a driver echoing its configuration)
        monkeypatch.setattr(jobs, "list_jobs", _explode)
        crash = call("GET", "/api/jobs", headers=admin)
        assert crash.status_code == 500 and crash.json()["error"]["code"] == "internal_error"
    assert inline_jobs, "no job ran"
    logged = capsys.readouterr()
    texts = {"structlog/stderr": logged.err + logged.out, "logging": caplog.text,
             "log records": "\n".join(str(r.__dict__) for r in caplog.records), "responses": "\n".join(bodies)}
    assert "http.unhandled" in texts["structlog/stderr"], "the crash was not logged"
    leaks = [f"{name} ({form[:12]}...) in {where}" for name, value in SECRETS.items() for form in _forms(value)
             for where, text in texts.items() if form in text]
    assert not leaks, "\n".join(leaks)


def _explode(*args: Any, **kwargs: Any) -> Any:
    from phoneops.settings import get_settings

    settings = get_settings()
    raise RuntimeError(f"connection failed: key={settings.hlr_api_key.get_secret_value() if settings.hlr_api_key else ''}"
                       f" session={settings.session_secret.get_secret_value()}")


def test_stdlib_records_are_scrubbed_and_keep_their_shape(caplog: pytest.LogCaptureFixture) -> None:
    """httpx logs URL objects; uvicorn's access formatter unpacks record.args: both must still work."""
    from phoneops.core.logging import configure_logging, register_secret

    configure_logging(json=True, level="INFO")
    secret = "key-" + uuid.uuid4().hex
    register_secret(secret)

    class Url:
        def __str__(self) -> str:
            return f"http://provider/api?apikey={quote(secret, safe='')}&n=1"

    caplog.set_level(logging.INFO)
    log = logging.getLogger("phoneops.tests.scrub")
    log.info("HTTP Request: %s %s %d", "GET", Url(), 200)
    log.info('%s - "%s %s HTTP/%s" %d', ("10.0.0.1", 5555), "GET", f"/hook?secret={secret}", "1.1", 200)
    try:
        raise RuntimeError(f"driver said: password={secret}")
    except RuntimeError:
        log.exception("call failed")
    access = caplog.records[1]
    assert isinstance(access.args, tuple) and access.args[0] == ("10.0.0.1", 5555) and access.args[4] == 200
    assert "apikey=***&n=1" in caplog.text and "/hook?secret=*** HTTP/1.1" in caplog.text
    assert "RuntimeError: driver said: password=***" in caplog.text
    assert secret not in caplog.text and quote(secret, safe="") not in caplog.text
