"""Number core, pure logic: E.164 normalisation (`normalize`), link tokens, encryption at rest and the
blind index (`crypto`), and OS classification rules (`osrules`). No database, no settings: callers pass
regions and keys in.

Modules:
- browse.py: Browsing one list as a table: filters (country, reason, source, who decided, listed dates), a...
- cli.py: `phoneops numbers ...`: look up, set statuses, import, export, OS rules, link tokens
- crypto.py: Link tokens, numbers at rest, and the blind index
- exports.py: List exports to CSV as background jobs: plaintext numbers for admins only, every export audited
- export_lines.py: The lines of a list export, one page at a time, in whichever process renders them
- imports.py: List imports you can preview and undo (docs/imports.md)
- links.py: Links to a number's story page (`/numbers/n/{key}`, `phoneops.numbers.story`) from every page...
- lists.py: Whitelist / monitor / blacklist: one status per number, decided by one precedence table
- metrics.py: Prometheus gauges for the lists: total and recent additions per list
- models.py: Numbers at rest: one row per number keyed by its blind index, every status change as an event
- normalize.py: E.164 normalisation: `normalize` for one value, `normalize_column` for a column; both give the...
- optouts.py: Opt-outs that stick: a suppression kept per number, apart from its list status
- osrules.py: OS rules: which list a device's operating system puts a number on
- prefixes.py: How much of a digit string a pattern reads: the prefix beyond which only "any digit" tokens remain
- queries.py: What other domains read of the numbers store, as functions: they never import `numbers.models`...
- router.py: Numbers API: lookup, statuses, lists, OS rules, imports, exports, link tokens
- rules.py: OS classification rules as data: the newest rule set in the database, else the original's table
- schemas.py: API shapes of the numbers domain
- story.py: A number's whole story, one answer: its status and every change of it, what the tracker saw...
- tasks.py: Background work of the numbers domain (imported by workers through phoneops.registry)
- vault.py: Numbers at rest bound to settings: blind index for matching, sealed token for the plaintext
- views.py: Numbers pages: overview with counts, lookup, lists, OS rules, imports, exports
"""
