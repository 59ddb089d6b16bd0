"""Helpers shared by the security tests: the JSON error shape and probe values."""

from __future__ import annotations

from typing import Any


def header(response: Any, name: str) -> str:
    """A response header from httpx / TestClient or schemathesis (whose headers are lists)."""
    value = response.headers.get(name) or response.headers.get(name.title()) or ""
    return str(value[0] if isinstance(value, list) and value else value or "")


def error_shape_problem(response: Any) -> str | None:
    """Why a response is not `{"error": {"code": str, "message": str, "details"?: any}}`, or None.

    The shape is the one phoneops.core.errors / app.py produce for every failure.
    """
    content_type = header(response, "content-type")
    if not content_type.startswith("application/json"):
        return f"not JSON ({content_type})"
    try:
        body = response.json()
    except ValueError:
        return "unparsable JSON"
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return "not the error shape"
    error = body["error"]
    if not {"code", "message"} <= set(error) <= {"code", "message", "details"}:
        return f"error keys {sorted(error)}"
    if not (isinstance(error["code"], str) and error["code"] and isinstance(error["message"], str) and error["message"]):
        return "empty code or message"
    return None


def assert_error_shape(response: Any, where: str = "") -> dict[str, Any]:
    problem = error_shape_problem(response)
    assert problem is None, f"{problem}: {where} {response.text[:300]!r}"
    error: dict[str, Any] = response.json()["error"]
    return error


def crash_site(exc: BaseException) -> str:
    """`Type: message at phoneops/file.py:line` (the innermost product frame) for a readable report."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/phoneops/" in f.filename]
    where = f" at {frames[-1].filename.split('/phoneops/')[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {str(exc)[:200]}{where}"


# --- harmless path values (nothing with these ids exists) ---------------------------------------

PATH_VALUES = {
    "action": "pause", "batch_id": "999999", "day": "2001-01-01", "fmt": "csv", "import_id": "999999",
    "job_id": "0" * 32, "lookup_id": "999999", "operator_id": "999999", "package_id": "999999",
    "row_id": "999999", "run_id": "999999", "status": "blacklist", "token_id": "999999",
    "username": "nobody-at-all", "which": "clean", "file_id": "999999",
}
UUID_FILE_ID = "00000000-0000-4000-8000-000000000000"


def concrete(path: str) -> str:
    import re

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "file_id" and path.startswith(("/api/files", "/files")):
            return UUID_FILE_ID
        return PATH_VALUES.get(name, "999999")

    return re.sub(r"\{([^}]+)\}", value, path)


def table_counts() -> dict[str, int]:
    """Rows per table: a cheap "nothing was written" fingerprint of the whole database."""
    from sqlalchemy import func, inspect, select, table

    from phoneops.core import db

    engine = db.get_engine()
    with engine.connect() as conn:
        return {name: int(conn.execute(select(func.count()).select_from(table(name))).scalar_one())
                for name in sorted(inspect(engine).get_table_names()) if name != "alembic_version"}
