"""What the simulators share: `SimState`, every simulator's state scaffold, and `SimCore`, the paid-call ones'
(GSM Fusion, DHRU, HLR Lookups).

A simulator's knobs are a dataclass checked by pydantic; `POST /_sim/config` changes them (`patch_config`,
unknown knobs refused), `balance` sets the accounts' balances (one amount for every account, or one per
account), `GET /_sim/config` shows them with the credentials masked (`config_json`), `POST /_sim/reset` goes
back to the initial knobs and empty state, `POST /_sim/advance` moves the simulated clock. Every access to the
state goes through one lock (thread- and async-safe). The endpoints themselves are `_server.introspection_routes`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import TypeAdapter

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Clock = Callable[[], float]
Config = TypeVar("Config", bound="DataclassInstance")


class SimState(Generic[Config]):
    """Every simulator's state scaffold: its knobs (`config`, back to `initial` on `reset`), one lock, a
    simulated clock offset (`advance`), call counters, the `latency_ms` knob (`delay`). A subclass builds its
    own state in `start` (called under the lock, after `config`, `calls`, `counters` and `offset` are fresh)."""

    adapter: ClassVar[TypeAdapter[Any]]

    def __init__(self, config: Config, clock: Clock = time.monotonic) -> None:
        self.initial = dataclasses.replace(config)
        self.clock = clock
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.config = dataclasses.replace(self.initial)
            self.calls: Counter[str] = Counter()
            self.counters: Counter[str] = Counter()
            self.offset = 0.0
            self.start()

    def start(self) -> None:
        """Fresh state for `self.config` (the lock is held)."""

    def changed(self, changes: Mapping[str, Any]) -> Config:
        """The knobs with `changes` applied, checked: unknown knobs and invalid values raise `ValueError`
        (pydantic's `ValidationError` is one). Call it with the lock held."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self.config)}
        if unknown:
            raise ValueError(f"unknown knobs: {sorted(unknown)}")
        config: Config = self.adapter.validate_python({**dataclasses.asdict(self.config), **changes})
        return config

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.offset += seconds

    async def delay(self) -> None:
        """The `latency_ms` knob, before a provider call is answered."""
        latency_ms: float = getattr(self.config, "latency_ms", 0.0)
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)


class SimCore(SimState[Config]):
    """The paid-call simulators' state: `SimState` with a monotonic simulated clock (`now`) and account
    balances set through the `balance` knob.

    A subclass names the knob holding its credentials (`accounts_knob`, a mapping whose keys are the accounts,
    masked in `config_json`)."""

    accounts_knob: ClassVar[str] = "users"
    balances: dict[str, Any]

    def configured(self) -> None:
        """Bring the state in line with changed knobs (the lock is held)."""

    def amount(self, value: Any) -> Any:
        """A balance as the simulator keeps it."""
        return value

    def accounts(self) -> Mapping[str, Any]:
        accounts: Mapping[str, Any] = getattr(self.config, self.accounts_knob)
        return accounts

    def now(self) -> float:
        return self.clock() + self.offset

    # --- introspection (/_sim/) ------------------------------------------------------------------

    def patch_config(self, changes: Mapping[str, Any]) -> None:
        """Change knobs; `balance` (an amount for every account, or `{account: amount}`) sets balances."""
        changes = dict(changes)
        balance = changes.pop("balance", None)
        with self.lock:
            self.config = self.changed(changes)
            self.configured()
            if balance is not None:
                per_account = balance if isinstance(balance, dict) else dict.fromkeys(self.accounts(), balance)
                self.balances.update({str(k): self.amount(v) for k, v in per_account.items()})

    def config_json(self) -> dict[str, Any]:
        data: dict[str, Any] = self.adapter.dump_python(self.config, mode="json")
        data[self.accounts_knob] = dict.fromkeys(self.accounts(), "***")
        return data
