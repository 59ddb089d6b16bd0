"""Generic building blocks free of domain logic: db, security, jobs, storage, csv, http.

Modules:
- access.py: Object-level access: one table says who may read, download, cancel or delete each kind of object
- audit.py: The audit log: every service that changes data or exports it writes one event here
- commands.py: What a domain's commands need from the `phoneops` command, below the domains...
- csvio.py: CSV helpers shared by every export: formula-safe cells and a streaming writer
- dates.py: Days as people and providers write them: one parser, one message for a bad one
- db.py: Engine, sessions and the declarative base
- demo.py: What `make demo` prepares: migrated database and an admin user whose password is shown once
- deps.py: FastAPI dependencies: the request's session, who is calling, and what they may do
- errors.py: Errors that carry their HTTP status; one handler in app.py renders them as JSON
- http.py: The provider kit: one httpx setup shared by every provider client
- idempotency.py: Idempotency keys: a client that retries a POST after a timeout never gets the work done twice
- jobs.py: Background jobs: the `jobs` row is the truth; Huey only carries "run job X" messages
- load.py: Bursts degrade gracefully: a bound on requests in flight, sized with the database pool and the...
- logging.py: structlog setup: dotted event names, request id in context, JSON in production, secrets scrubbed
- metrics.py: Prometheus metrics, computed from the database at scrape time (right with many processes)
- migrate.py: Apply (or generate) Alembic migrations programmatically: `phoneops migrate`
- models.py: Tables of the core: users, API tokens, login attempts, audit log, jobs, periodic runs, files
- queue.py: The Huey side of jobs: SqliteHuey by default, RedisHuey when REDIS_URL is set
- router.py: Core API: who am I, jobs, users, tokens, files, audit
- routes.py: A flat view of the app's routes (FastAPI ≥0.16x keeps included routers nested)
- sample.py: The sample job `sample.count`: counts to N, one committed step at a time
- schemas.py: API shapes of the core
- security.py: Users, roles, passwords, API tokens, session cookies, CSRF and login throttling
- sorting.py: Sorting a table by a column the user clicked: the key is looked up in the table's own map, never...
- storage.py: Files: uploads streamed to a local temp file under a size limit, then stored under their id,...
- storage_backend.py: The storage API every backend implements (`Storage`), with the name and id rules they share
- storage_s3.py: Stored files in an S3-compatible bucket (AWS S3, MinIO, Ceph; moto's server in tests)
- text.py: Provider text for people: HTML fragments (service descriptions, notes) as plain text for a terminal
"""
