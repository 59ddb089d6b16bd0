"""Privacy and data care: erasing one number everywhere, retention of raw events, backups.

Modules:
- backup.py: `phoneops backup` / `phoneops restore`: the database only (stored files live in STORAGE_ROOT or...
- cli.py: `phoneops privacy ...`: erase a number, check the ledger, purge raw rows past their retention
- erase.py: Erasing one number everywhere, on request: rows, free text and JSON, stored files
- files.py: Removing one number from stored files: uploads and produced CSV / XLSX, rewritten in place (same...
- matching.py: Recognising one number wherever it is written: table cells, free text, JSON values, link tokens
- models.py: The erasure ledger: one row per erasure request, keyed by the number's blind index (never its...
- places.py: Where a number lives in the database, and how each place forgets it
- retention.py: Retention: raw tracker events and raw HLR rows older than a configured age are purged, in batches
- router.py: Privacy API (admin only): erase a number, the erasure ledger, retention settings and purge
- schemas.py: API shapes of privacy: erasure requests and the ledger, retention, purge
- tasks.py: Background work of privacy: the erasure job, the retention purge (on demand and daily at 03:40 UTC)
- views.py: Privacy page (admin): erase a number, the erasure ledger, retention settings
"""
