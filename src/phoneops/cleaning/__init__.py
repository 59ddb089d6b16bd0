"""List cleaning: uploaded CSV/TSV/xlsx files cleaned against the number lists, and encryption files.

Modules:
- cli.py: `phoneops cleaning ...`: upload, clean (with a progress bar), stats, download, encrypt, archive,...
- encryption.py: Encryption files: a table's phone column turned into link tokens, or tokens back into numbers
- filters.py: Filters of a cleaning run: which valid, first-seen numbers to remove, and under which outcome
- keys.py: Match keys: how a run's numbers meet the numbers of a source (`filters`) by their blind indexes
- metrics.py: Prometheus gauges for list cleaning: files by status, runs by outcome, size of the main database
- models.py: Tables of list cleaning: uploaded files, runs (one execution with its options and results), used...
- pipeline.py: The cleaning computation: a table in, a cleaned table, a rejected table and stats out
- ranges.py: What a cleaning run's worker processes do: a byte range of the file prepared, later written
- reading.py: Reading uploaded tables: what a file looks like (inspection) and its rows in bounded batches
- router.py: Cleaning API: upload files, start runs (409 while one runs), read stats, download results
- schemas.py: API shapes of list cleaning
- service.py: Runs: start one (one per file at a time), read them, their stats and result files
- tasks.py: Background runs: ``cleaning.run`` (clean a list) and ``cleaning.encrypt`` (encrypt / decrypt a file)
- upload.py: Uploading a table for cleaning or encryption, and managing the uploaded files (list, archive,...
- used.py: The "main database": numbers already used, keyed by blind index
- views.py: Cleaning pages: files and upload, a file with its runs (live progress, stats chart, downloads),...
"""
