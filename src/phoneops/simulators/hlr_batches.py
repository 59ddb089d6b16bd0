"""The batch host of the hlrlookup.com simulator (docs/providers/hlr_lookup.md, batch host).

create (`NEW`) -> upload the CSV source (replaces it while `NEW`) -> `PUT {"status": "PROCESSING"}` ->
items are looked up and paid as the simulated clock runs (`numComplete` grows) -> `COMPLETE`, or `FAILED`
when the simulator is told to fail batches. Starting a batch twice is a no-op: a batch is paid once.
`NEW` is an inferred name (the docs show only COMPLETE / FAILED / ERROR and "anything else: running"), so
it is a knob (`unstarted_status`): our client must never decide from it. A second start answers the batch
(or, with `restart_answer="already_started"`, a 400 "Batch already started").

`BatchHost` holds no lock of its own: `HlrSim.batch_host()` hands it out under the simulator's lock.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from phoneops.simulators.hlr_outcomes import CSV_COLUMNS, BadRequest, csv_row, digits

Pay = Callable[[str, dict[str, Any]], dict[str, Any]]  # (account, request parameters) -> one result record


@dataclass
class SimBatch:
    id: int
    owner: str
    filename: str
    batch_type: str
    arguments: dict[str, Any]
    creation_date: str
    source: list[str] = field(default_factory=list)
    status: str = "NEW"  # "NEW" until started (shown as the host's `unstarted_status`)
    started: float = 0.0
    rows: list[list[str]] = field(default_factory=list)

    def json(self, unstarted: str = "NEW") -> dict[str, Any]:
        return {
            "id": self.id, "filename": self.filename, "numColumns": 1, "ownerName": "simulator",
            "type": self.batch_type, "batchArguments": self.arguments, "scheduledStart": None,
            "creationDate": self.creation_date, "numItems": len(self.source), "numComplete": len(self.rows),
            "status": unstarted if self.status == "NEW" else self.status,
        }


class BatchHost:
    def __init__(self, first_id: int, unstarted_status: str = "NEW") -> None:
        self.batches: dict[int, SimBatch] = {}
        self.next_id = first_id
        self.unstarted_status = unstarted_status
        self.restarted = False  # the last `start` found the batch already started

    def _find(self, account: str, batch_id: str) -> SimBatch | None:
        batch = self.batches.get(int(batch_id)) if batch_id.isdigit() else None
        return batch if batch is not None and batch.owner == account else None

    def tick(self, now: float, items_per_second: float, fail: bool, pay: Pay) -> None:
        """Process what the time allows of every running batch, paying item by item."""
        for batch in self.batches.values():
            if batch.status != "PROCESSING":
                continue
            if fail:
                batch.status = "FAILED"
                continue
            total = len(batch.source)
            target = total if items_per_second <= 0 else min(total, int((now - batch.started) * items_per_second))
            args = batch.arguments
            for line in batch.source[len(batch.rows) : target]:
                params = {"telephone_number": line, "cache_days_private": args.get("cache_days_private", 0),
                          "cache_days_global": args.get("cache_days_global", 0),
                          "save_to_cache": args.get("save_to_cache", "YES"), "output_format": ""}
                batch.rows.append(csv_row(line, pay(batch.owner, params)))
            if len(batch.rows) >= total:
                batch.status = "COMPLETE"

    def create(self, account: str, body: Any, created: str) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("filename", ""), str):
            raise BadRequest("Missing parameter: filename")
        if body.get("type", "HLR_V2") not in ("HLR_V2", "MNP"):
            raise BadRequest("Invalid type requested")
        arguments = body.get("batchArguments") or {}
        if not isinstance(arguments, dict):
            raise BadRequest("Invalid batchArguments requested")
        batch = SimBatch(
            self.next_id, account, body.get("filename", ""), body.get("type", "HLR_V2"), arguments, created
        )
        self.next_id += 1
        self.batches[batch.id] = batch
        return batch.json(self.unstarted_status)

    def upload(self, account: str, batch_id: str, content: bytes) -> dict[str, Any] | None:
        """Replace the source with the CSV's first column (a first line without digits is a header)."""
        batch = self._find(account, batch_id)
        if batch is None:
            return None
        if batch.status != "NEW":
            raise BadRequest("Batch already started")
        try:
            rows = csv.reader(io.StringIO(content.decode("utf-8-sig")))
            lines = [row[0].strip() for row in rows if row and row[0].strip()]
        except (UnicodeDecodeError, csv.Error):
            raise BadRequest("Invalid source file") from None
        batch.source = lines[1:] if lines and not digits(lines[0]) else lines
        return batch.json(self.unstarted_status)

    def start(self, account: str, batch_id: str, body: Any, now: float) -> dict[str, Any] | None:
        if not isinstance(body, dict) or body.get("status") != "PROCESSING":
            raise BadRequest("Invalid status requested")
        batch = self._find(account, batch_id)
        if batch is None:
            return None
        self.restarted = batch.status != "NEW"
        if batch.status == "NEW":
            if not batch.source:
                raise BadRequest("Batch has no numbers")
            batch.status, batch.started = "PROCESSING", now
        return batch.json(self.unstarted_status)

    def get(self, account: str, batch_id: str) -> dict[str, Any] | None:
        batch = self._find(account, batch_id)
        return batch.json(self.unstarted_status) if batch is not None else None

    def page(self, account: str, offset: int, limit: int) -> dict[str, Any]:
        mine = [b.json(self.unstarted_status) for b in self.batches.values() if b.owner == account]
        return {"total": len(mine), "offset": offset, "limit": limit, "batches": mine[offset : offset + limit]}

    def results_csv(self, account: str, batch_id: str) -> str | None:
        """The rows processed so far (all of them once COMPLETE)."""
        batch = self._find(account, batch_id)
        if batch is None:
            return None
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["", *CSV_COLUMNS])
        writer.writerows(batch.rows)
        return out.getvalue()
