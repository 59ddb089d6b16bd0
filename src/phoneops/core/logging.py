"""structlog setup: dotted event names, request id in context, JSON in production, secrets scrubbed."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import quote, quote_plus

import structlog

_secrets: set[str] = set()


_ordered: list[str] = []  # longest first, so a key ring is replaced before the keys inside it


def register_secret(*values: str | None) -> None:
    """Values that must never reach a log line (API keys, passwords, session secret).

    Their URL-encoded forms count too: a key sent in a query string is logged that way (httpx logs URLs).
    """
    global _ordered
    for value in values:
        if value and len(value) >= 6:
            _secrets.update({value, quote(value, safe=""), quote_plus(value)})
    _ordered = sorted(_secrets, key=len, reverse=True)


def register_settings_secrets(settings: Any) -> None:
    """Every secret setting: each SecretStr field (and each key of a key ring), the database password."""
    from pydantic import SecretStr
    from sqlalchemy.engine import make_url

    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
            register_secret(text)
            for part in text.split(","):  # key rings: "id:key,id:key"
                register_secret(part.strip(), part.split(":", 1)[-1].strip())
    with contextlib.suppress(Exception):  # not a URL: nothing to hide
        register_secret(make_url(str(getattr(settings, "database_url", ""))).password)


def scrub(text: str) -> str:
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def scrub_value(value: Any) -> Any:
    """`scrub` through dicts, lists and tuples."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_value(v) for v in value)
    return value


def _scrub_processor(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if not _secrets:
        return event_dict
    for key, value in list(event_dict.items()):
        event_dict[key] = scrub_value(value)
    return event_dict


def _scrub_arg(value: Any) -> Any:
    """A log argument as is, or as scrubbed text when its text holds a secret (httpx logs URL objects)."""
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = str(value)
    clean = scrub(text)
    return value if clean == text else clean


def _scrub_record(record: logging.LogRecord) -> None:
    """Stdlib records (httpx, uvicorn, SQLAlchemy ...): message and traceback scrubbed where they are made."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is logging's own problem to report
        return
    if scrub(message) != message:
        # scrub the parts, keeping their shape (uvicorn's access formatter unpacks record.args)
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _scrub_arg(v) for k, v in record.args.items()}
        if scrub(record.getMessage()) != record.getMessage():  # still there: flatten
            record.msg, record.args = scrub(message), None
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        clean = scrub(text)
        if clean != text:  # keep the scrubbed text only: formatters print exc_text when exc_info is gone
            record.exc_text, record.exc_info = clean, None


def _install_record_scrubber() -> None:
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _secrets:
            _scrub_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


_factory_installed = False


class _CurrentStderr:
    """Writes to whatever sys.stderr is now (test runners and daemons swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(json: bool = True, level: str = "INFO") -> None:
    _install_record_scrubber()
    try:
        from phoneops.settings import get_settings

        register_settings_secrets(get_settings())
    except Exception:  # noqa: S110 - settings that do not load are reported by whoever loads them
        pass
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _scrub_processor,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # _CurrentStderr: a Rich progress bar replaces sys.stderr while it runs and prints log lines above itself,
    # so no log line lands in the middle of a bar.
    logging.basicConfig(level=level.upper(), stream=_CurrentStderr(),
                        format="%(levelname)s %(name)s %(message)s")
