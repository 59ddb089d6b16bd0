"""Which lists pay: every uploaded, cleaned or imported list carries a source label; the numbers of each source
(by blind index only) are joined with what they cost and earned (docs/sources.md).

Modules:
- cli.py: `phoneops sources report`: which lists pay, for a period, as a table or CSV (docs/sources.md)
- models.py: Source membership: which numbers (blind indexes, never plaintext) each labelled list brought in
- router.py: Sources API: the per-source report (JSON with a per-day series) and its CSV (docs/sources.md)
- service.py: Source labels and the per-source report (docs/sources.md)
- views.py: The sources page: which lists pay, per source for a period, with a cost and revenue chart per source
"""
