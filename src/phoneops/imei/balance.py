"""The balance guard: never spend below a provider account's minimum balance (docs/imei.md, "Balance guard").

Providers that report a balance (DHRU `accountinfo`; GSM Fusion has no such action) are guarded:

- before a batch is created, its cost per account is compared with `balance - IMEI_MIN_BALANCE`
  (`check_quote`): a batch that does not fit is refused before anything is stored or paid;
- while it runs, the batch engine asks `BalanceGuard.admit` before committing each chunk of intents: an
  order is sent only if `balance read - cost of orders sent since (in flight or placed) - its price`
  stays >= the minimum. The balance is read again every `IMEI_BALANCE_CHECK_EVERY` orders (and whenever
  the estimate says the next order would not fit). What does not fit pauses the batch with a clear
  message before the order is sent;
- after the batch, the balance change is compared with the spend we recorded (`close`); a difference is
  stored on the batch, shown on its page and on the dashboard, and audited.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.errors import Conflict
from phoneops.core.http import ProviderError
from phoneops.core.security import SYSTEM, Principal
from phoneops.imei.models import PLACED, ImeiBatch, ImeiOrder
from phoneops.imei.provider import (
    BALANCE_NOT_AVAILABLE,
    SyncPool,
    account_title,
    as_app_error,
    describe,
    has_balance,
    split_id,
)
from phoneops.settings import Settings, get_settings

log = structlog.get_logger("phoneops.imei.balance")


def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


@dataclass(frozen=True)
class AccountQuote:
    """One guarded account in a quote: what the batch costs there and what the account holds."""

    account: str
    title: str
    cost: Decimal
    balance: Decimal | None
    minimum: Decimal
    error: str | None = None

    @property
    def available(self) -> Decimal | None:
        return None if self.balance is None else self.balance - self.minimum

    @property
    def fits(self) -> bool:
        return self.available is not None and self.cost <= self.available

    def text(self) -> str:
        if self.balance is None:
            return f"{self.title}: balance unavailable ({self.error})"
        return f"{self.title}: {money(self.balance)} (minimum {money(self.minimum)}, this batch {money(self.cost)})"

    def to_dict(self) -> dict[str, Any]:
        return {"account": self.account, "title": self.title, "cost": money(self.cost),
                "balance": None if self.balance is None else money(self.balance), "minimum": money(self.minimum),
                "available": None if self.available is None else money(self.available), "fits": self.fits,
                "error": self.error}


def costs_by_account(rows: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    """Cost per guarded account of (service id, price) rows."""
    costs: dict[str, Decimal] = {}
    for service_id, price in rows:
        account = split_id(service_id)[0]
        if has_balance(account):
            costs[account] = costs.get(account, Decimal(0)) + price
    return costs


def quote_balances(costs: dict[str, Decimal], settings: Settings | None = None) -> list[AccountQuote]:
    """Read each guarded account's balance now (one `accountinfo` each)."""
    settings = settings or get_settings()
    quotes: list[AccountQuote] = []
    if not costs:
        return quotes
    with SyncPool(settings, timeout=15.0) as pool:
        for account, cost in sorted(costs.items()):
            balance, error = None, None
            try:
                info = pool.balance(account)
                balance = info.credit if info else None
            except ProviderError as exc:
                error = describe(exc)
            except Exception as exc:  # an account missing from the settings, ...
                error = getattr(exc, "message", str(exc))
            quotes.append(AccountQuote(account, account_title(account, settings), cost, balance,
                                       settings.imei_min_balance, error))
    return quotes


def balances_text(settings: Settings | None = None) -> str:
    """Every guarded account's balance now, as one line for pages (read with a short timeout)."""
    settings = settings or get_settings()
    if not settings.dhru_accounts:
        return BALANCE_NOT_AVAILABLE
    parts = []
    with SyncPool(settings, timeout=5.0) as pool:
        for account in settings.dhru_accounts:
            try:
                info = pool.balance(account.name)
                parts.append(f"{account.title}: {money(info.credit)} {info.currency}".strip() if info else "")
            except ProviderError as exc:
                parts.append(f"{account.title}: unavailable ({describe(exc)})")
    return "; ".join(p for p in parts if p) + f" (minimum kept: {money(settings.imei_min_balance)})"


def check_quote(quotes: Sequence[AccountQuote]) -> None:
    """Refuse (409 `balance_too_low`) a batch whose cost does not fit an account's balance minus the minimum."""
    for q in quotes:
        if q.balance is not None and not q.fits:
            raise Conflict(
                f"not enough balance at {q.title}: this batch costs {money(q.cost)}, the balance is "
                f"{money(q.balance)} and {money(q.minimum)} must stay (IMEI_MIN_BALANCE); top up or send fewer IMEIs",
                code="balance_too_low", details={"balances": [x.to_dict() for x in quotes]},
            )


# --- while a batch runs ---------------------------------------------------------------------------------


@dataclass
class _Account:
    balance: Decimal  # as last read
    reads: int = 1
    committed: Decimal = Decimal(0)  # cost of orders sent since that read that may be charged after it
    in_flight: Decimal = Decimal(0)  # cost of orders sent and not settled yet
    since_read: int = 0  # orders sent since that read


@dataclass
class BalanceGuard:
    """Per-batch guard used by the batch engine (from its database threads; thread-safe)."""

    pool: SyncPool
    minimum: Decimal
    every: int
    accounts: dict[str, _Account] = field(default_factory=dict)
    paused: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _read(self, account: str) -> Decimal:
        info = self.pool.balance(account)
        if info is None:
            raise RuntimeError(f"{account} reports no balance")
        log.info("imei.balance_read", account=account, balance=str(info.credit))
        return info.credit

    def start(self, accounts: Iterable[str]) -> dict[str, Decimal]:
        """Read every guarded account once (before anything is sent); returns the balances read."""
        with self._lock:
            for account in accounts:
                if has_balance(account) and account not in self.accounts:
                    self.accounts[account] = _Account(self._read(account))
            return {a: s.balance for a, s in self.accounts.items()}

    def admit(self, works: Sequence[tuple[str, Decimal | None]]) -> int:
        """How many of `works` ((service id, price), in order) may be sent now; sets `paused` when one
        does not fit (the engine stops there: nothing after it is sent either)."""
        with self._lock:
            admitted = 0
            if self.paused:
                return 0
            for service_id, price in works:
                account = split_id(service_id)[0]
                if not has_balance(account):
                    admitted += 1
                    continue
                state = self.accounts.get(account)
                if state is None:
                    state = self.accounts[account] = _Account(self._read(account))
                cost = price or Decimal(0)
                if state.since_read >= self.every or state.balance - state.committed - cost < self.minimum:
                    # re-read; orders in flight may be charged after the read: they stay counted (safe side)
                    state.balance, state.reads = self._read(account), state.reads + 1
                    state.committed, state.since_read = state.in_flight, 0
                if state.balance - state.committed - cost < self.minimum:
                    left = state.balance - state.committed
                    self.paused = (
                        f"paused before crossing the minimum balance of {account_title(account)}: "
                        f"{money(left)} left, {money(self.minimum)} must stay (IMEI_MIN_BALANCE), the next order "
                        f"costs {money(cost)}; top up the account and resume the batch"
                    )
                    break
                state.committed += cost
                state.in_flight += cost
                state.since_read += 1
                admitted += 1
            return admitted

    def release(self, service_id: str, price: Decimal | None, charged: bool) -> None:
        """An order settled (no longer in flight); a refused or never-sent one gives its reserve back."""
        account = split_id(service_id)[0]
        with self._lock:
            state = self.accounts.get(account)
            if state is not None:
                state.in_flight -= price or Decimal(0)
                if not charged:
                    state.committed -= price or Decimal(0)


def close(session: Session, actor: Principal | None, batch: ImeiBatch, pool: SyncPool) -> None:
    """After a batch (or a pause): read the balance again and compare its change since the batch's first start
    with the spend we recorded for it (orders placed on that account)."""
    account, before = batch.balance_account, batch.balance_start
    if account is None or before is None:
        return
    try:
        info = pool.balance(account)
    except ProviderError as exc:
        log.warning("imei.balance_end_unreadable", batch_id=batch.id, error=exc.message)
        return
    if info is None:
        return
    prefix = f"{account}:%"
    recorded = session.scalar(
        select(func.coalesce(func.sum(ImeiOrder.credits), 0)).where(
            ImeiOrder.batch_id == batch.id, ImeiOrder.state == PLACED, ImeiOrder.service_id.like(prefix)
        )
    )
    spent = Decimal(str(recorded or 0))
    difference = (before - info.credit) - spent
    batch.balance_end, batch.balance_difference = info.credit, difference
    if difference != 0:
        log.warning("imei.balance_difference", batch_id=batch.id, account=account, difference=str(difference))
        audit(session, actor or SYSTEM, "imei.balance_difference", "imei_batch", batch.id,
              {"account": account, "balance_start": money(before), "balance_end": money(info.credit),
               "recorded_spend": money(spent), "difference": money(difference)})


def guard_for(settings: Settings | None = None) -> BalanceGuard:
    settings = settings or get_settings()
    return BalanceGuard(SyncPool(settings, timeout=15.0), settings.imei_min_balance, settings.imei_balance_check_every)


__all__ = [
    "AccountQuote",
    "BalanceGuard",
    "as_app_error",
    "check_quote",
    "close",
    "costs_by_account",
    "guard_for",
    "quote_balances",
]
