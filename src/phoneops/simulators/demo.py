"""The demo's providers: each provider without credentials gets its simulator, with seeded demo data.

`make demo` runs the product with no real account anywhere: every provider whose credentials are not
set is served by its simulator on 127.0.0.1, and the settings point at it. A provider with real
credentials is left alone. Nothing here runs outside `phoneops demo`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from phoneops.simulators._server import serve_in_thread


@dataclass(frozen=True)
class DemoProvider:
    name: str
    port: int
    credentials: tuple[str, ...]  # the settings that, when all unset, switch the simulator on
    build: Callable[[MutableMapping[str, str]], Any]  # -> ASGI app
    settings: Callable[[str], dict[str, str]]  # base URL -> settings to set


def _gsm(env: MutableMapping[str, str]) -> Any:
    from phoneops.simulators.gsm_fusion import GsmFusionSimConfig, create_app

    return create_app(GsmFusionSimConfig(latency_ms=50, pending_seconds=20, in_process_seconds=40))


def _gsm_settings(url: str) -> dict[str, str]:
    from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER

    return {"GSM_FUSION_BASE_URL": url, "GSM_FUSION_USERNAME": DEFAULT_USER, "GSM_FUSION_API_KEY": DEFAULT_API_KEY}


def _hlr(env: MutableMapping[str, str]) -> Any:
    from phoneops.simulators.hlr_lookup import HlrSimConfig, create_app

    return create_app(HlrSimConfig(latency_ms=30))


def _hlr_settings(url: str) -> dict[str, str]:
    from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET

    return {"HLR_BASE_URL": url, "HLR_BATCH_BASE_URL": url, "HLR_API_KEY": DEFAULT_API_KEY,
            "HLR_API_SECRET": DEFAULT_API_SECRET, "HLR_POLL_EVERY_SECONDS": "2"}


def _voluum(env: MutableMapping[str, str]) -> Any:
    from datetime import UTC, datetime, timedelta

    from phoneops.simulators.voluum import VoluumSimConfig, create_app

    first_day = (datetime.now(UTC) - timedelta(days=6)).date().isoformat()  # the last week, today included
    return create_app(VoluumSimConfig(start_date=first_day, days=7, visits_per_day=300, valid_numbers=True,
                                      token_key=env.get("AES_KEY") or None))


def _voluum_settings(url: str) -> dict[str, str]:
    from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY

    return {"VOLUUM_BASE_URL": url, "VOLUUM_ACCESS_ID": DEFAULT_ACCESS_ID, "VOLUUM_ACCESS_KEY": DEFAULT_ACCESS_KEY}


def _messagewhiz(env: MutableMapping[str, str]) -> Any:
    from phoneops.simulators.messagewhiz import MessageWhizSimConfig, create_app

    return create_app(MessageWhizSimConfig())


def _messagewhiz_settings(url: str) -> dict[str, str]:
    from phoneops.simulators.messagewhiz import DEFAULT_API_KEY

    return {"MESSAGEWHIZ_BASE_URL": url, "MESSAGEWHIZ_API_KEY": DEFAULT_API_KEY}


def _ongage(env: MutableMapping[str, str]) -> Any:
    from phoneops.simulators.ongage import OngageSimConfig, create_app

    return create_app(OngageSimConfig())


def _ongage_settings(url: str) -> dict[str, str]:
    from phoneops.simulators.ongage import DEFAULT_ACCOUNT_CODE, DEFAULT_LIST_ID, DEFAULT_PASSWORD, DEFAULT_USERNAME

    return {"ONGAGE_BASE_URL": url, "ONGAGE_LIST_ID": DEFAULT_LIST_ID, "ONGAGE_USERNAME": DEFAULT_USERNAME,
            "ONGAGE_PASSWORD": DEFAULT_PASSWORD, "ONGAGE_ACCOUNT_CODE": DEFAULT_ACCOUNT_CODE}


PROVIDERS = (
    DemoProvider("GSM Fusion", 8901, ("GSM_FUSION_USERNAME", "GSM_FUSION_API_KEY"), _gsm, _gsm_settings),
    DemoProvider("HLR lookup", 8902, ("HLR_API_KEY", "HLR_API_SECRET"), _hlr, _hlr_settings),
    DemoProvider("Voluum", 8905, ("VOLUUM_ACCESS_ID", "VOLUUM_ACCESS_KEY"), _voluum, _voluum_settings),
    DemoProvider("MessageWhiz", 8906, ("MESSAGEWHIZ_API_KEY",), _messagewhiz, _messagewhiz_settings),
    DemoProvider("Ongage", 8907, ("ONGAGE_USERNAME", "ONGAGE_PASSWORD"), _ongage, _ongage_settings),
)


def start_demo_simulators(env: MutableMapping[str, str], stack: contextlib.ExitStack) -> list[tuple[str, str]]:
    """Serve a simulator for every provider without credentials; returns (provider, url) pairs."""
    started = []
    for provider in PROVIDERS:
        if any(env.get(name) for name in provider.credentials):
            continue
        try:
            url = stack.enter_context(serve_in_thread(provider.build(env), port=provider.port))
        except OSError:  # the port is taken: let it pick a free one
            url = stack.enter_context(serve_in_thread(provider.build(env), port=0))
        env.update(provider.settings(url))
        started.append((provider.name, url))
    return started
