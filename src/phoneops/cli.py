# Over 400 lines: the root command: serve, worker, demo, migrate, users, tokens, jobs, backups.
"""The `phoneops` command: serve, worker, demo, migrate, user, token, jobs; domains add sub-commands."""

from __future__ import annotations

import getpass
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from phoneops.core import commands
from phoneops.core.errors import AppError
from phoneops.settings import Settings, SettingsError

app = typer.Typer(help="phoneops: phone-number audience hygiene and IMEI device checks.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
token_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
jobs_app = typer.Typer(help="Follow background jobs.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(jobs_app, name="jobs")

console = commands.console
err = commands.err
follow_job = commands.follow_job
run_here_or_queue = commands.run_here_or_queue

CLI_ACTOR_NAME = commands.CLI_ACTOR_NAME


DEMO_SECRETS = "demo-secrets.env"
DEMO_PROVIDERS = "demo-providers.env"
_env_loaded = False


def find_data_dir(start: Path | None = None) -> Path:
    """DATA_DIR when set; else the nearest `data/` folder holding the demo's files, looking from the current
    folder up (as git finds `.git`); else `./data`."""
    if os.environ.get("DATA_DIR"):
        return Path(os.environ["DATA_DIR"]).expanduser().absolute()
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        candidate = folder / "data"
        if (candidate / DEMO_SECRETS).is_file() or (candidate / "phoneops.db").is_file():
            return candidate
    return here / "data"


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def load_demo_env(*, providers: bool = True) -> Path:
    """Every command reads what `make demo` wrote into the data directory: its secrets
    (`demo-secrets.env`) and the simulators it serves (`demo-providers.env`: addresses and credentials).
    Values already in the environment win; a provider with its own credentials set is left alone."""
    global _env_loaded
    data_dir = find_data_dir()
    if _env_loaded:
        return data_dir
    _env_loaded = True
    os.environ.setdefault("DATA_DIR", str(data_dir))
    secrets_file = data_dir / DEMO_SECRETS
    if secrets_file.is_file() and not _dotenv_sets_secrets():
        for name, value in _read_env_file(secrets_file).items():
            if value:
                os.environ.setdefault(name, value)
    providers_file = data_dir / DEMO_PROVIDERS
    if providers and providers_file.is_file():
        from phoneops.simulators.demo import PROVIDERS

        saved = _read_env_file(providers_file)
        for provider in PROVIDERS:
            if any(os.environ.get(name) for name in provider.credentials):
                continue  # real credentials: the real provider
            for name in provider.settings(""):
                if saved.get(name):
                    os.environ.setdefault(name, saved[name])
    return data_dir


def _dotenv_sets_secrets() -> bool:
    """A `.env` in the current folder with its own secrets is a real set-up: the demo's are not mixed in."""
    dotenv = Path(".env")
    return dotenv.is_file() and "SESSION_SECRET" in _read_env_file(dotenv)


def _settings() -> Settings:
    from phoneops.settings import get_settings, reset_settings_cache

    if not _env_loaded:
        load_demo_env()
        reset_settings_cache()
    try:
        return get_settings()
    except SettingsError as exc:
        err.print(f"[red]{exc}[/red]")
        if "SESSION_SECRET" in str(exc) or "AES_KEYS" in str(exc):
            err.print(f"No secrets found. Start the demo once (`make demo`), which writes them to "
                      f"{find_data_dir() / DEMO_SECRETS}, or set DATA_DIR to the folder holding that file; "
                      f"for production set them in the environment or .env (see .env.example).")
        raise typer.Exit(2) from None


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _bootstrap(*, service: bool = False, need_database: bool = True) -> Settings:
    """Settings, logging, database and domains for a command. Commands people type log only warnings, in
    plain text on stderr; services (`serve`, `worker`, `demo`) log as configured."""
    from phoneops.core import db
    from phoneops.core.logging import configure_logging
    from phoneops.registry import load_domains

    settings = _settings()
    if service:
        configure_logging(settings.log_json, settings.log_level)
    else:
        level = settings.log_level if "LOG_LEVEL" in os.environ else "WARNING"
        configure_logging(settings.log_json and "LOG_JSON" in os.environ, level)
        import logging

        for noisy in ("httpx", "httpcore", "huey"):
            logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    path = _sqlite_path(settings.database_url)
    if need_database and path is not None and not path.exists():
        err.print(f"[red]error:[/red] no database at {path}.", soft_wrap=True)
        err.print("Start the demo first (`make demo` in the phoneops folder), run `phoneops migrate` to create "
                  "an empty one, or point DATA_DIR (or DATABASE_URL) at an existing one. "
                  f"DATA_DIR is now {settings.data_dir}.")
        raise typer.Exit(2)
    db.configure(settings.database_url)
    load_domains()
    return settings


commands.set_bootstrap(_bootstrap)  # domains' commands start up as every command does


cli_actor = commands.cli_actor
fail = commands.fail


# --- database ----------------------------------------------------------------------------------


@app.command()
def migrate() -> None:
    """Apply database migrations up to the latest version."""
    from phoneops.core.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    console.print("[green]database is up to date[/green]")


# --- processes ---------------------------------------------------------------------------------


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8800,
    embedded_worker: Annotated[bool, typer.Option(help="Run a job consumer in this process")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="API processes sharing the port")] = 1,
    proxy_headers: Annotated[bool, typer.Option(
        help="Take the client address and scheme from X-Forwarded-For / X-Forwarded-Proto sent by a trusted proxy"
    )] = True,
    forwarded_allow_ips: Annotated[str, typer.Option(
        help="Comma-separated addresses or networks of trusted proxies ('*' = any: only when the port is "
             "reachable from the proxy alone)"
    )] = "127.0.0.1",
) -> None:
    """Run the API and web UI (optionally with an embedded job worker, or as several processes)."""
    import uvicorn

    if embedded_worker and workers > 1:
        err.print("[red]error:[/red] --embedded-worker runs in a single API process; use --workers 1 with it, "
                  "or run `phoneops worker` processes next to `phoneops serve --workers N`")
        raise typer.Exit(2)
    settings = _bootstrap(service=True)  # a bad configuration stops here, before any process starts
    from fastapi import FastAPI

    from phoneops.app import create_app

    # Several processes: each imports the app and builds it from the same environment.
    target: str | FastAPI = "phoneops.app:create_app" if workers > 1 else create_app(settings)
    consumer = None
    reaper = None
    if embedded_worker:
        from phoneops.core.jobs import Reaper
        from phoneops.core.queue import start_consumer

        consumer = start_consumer(settings.worker_threads)
        reaper = Reaper(interval=max(1.0, settings.job_lease_seconds / 2))
        reaper.start()
    try:
        uvicorn.run(
            target, factory=workers > 1, workers=workers, host=host, port=port, log_level="warning",
            access_log=False, proxy_headers=proxy_headers, forwarded_allow_ips=forwarded_allow_ips,
            timeout_graceful_shutdown=5,  # open live-view streams must not hold a shutdown
        )
    finally:
        if reaper is not None:
            reaper.stop()
        if consumer is not None:
            consumer.stop(graceful=True)


@app.command()
def worker(threads: Annotated[int | None, typer.Option(help="Worker threads")] = None) -> None:
    """Run a job consumer (any number of them, on any machine)."""
    from phoneops.core.jobs import Reaper, reap_expired
    from phoneops.core.queue import get_huey

    settings = _bootstrap(service=True)
    huey = get_huey()
    reap_expired()
    reaper = Reaper(interval=max(1.0, settings.job_lease_seconds / 2))
    reaper.start()
    # max_delay: an idle worker polls at least every second, so a requeued job is picked up quickly.
    consumer = huey.create_consumer(workers=threads or settings.worker_threads, worker_type="thread", max_delay=1.0)
    consumer.run()


def _ensure_demo_secrets(data_dir: Path) -> None:
    """Give a fresh machine working secrets: generated once into data/demo-secrets.env (mode 600)."""
    import base64

    path = data_dir / "demo-secrets.env"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        blind = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        # The demo's Voluum simulator writes link tokens in the original format under AES_KEY.
        legacy = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        path.write_text(
            f"SESSION_SECRET={secrets.token_urlsafe(48)}\nAES_KEYS=k1:{key}\nBLIND_INDEX_KEY={blind}\n"
            f"AES_KEY={legacy}\n"
        )
        path.chmod(0o600)
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        if name and value:
            os.environ.setdefault(name, value)


@app.command()
def demo(port: int = 8800) -> None:
    """Migrate, create the admin user, start the simulators, seed a first week of data and serve everything on
    127.0.0.1."""
    import contextlib

    from phoneops.settings import reset_settings_cache
    from phoneops.simulators.demo import start_demo_simulators

    global _env_loaded
    data_dir = find_data_dir()
    os.environ["DATA_DIR"] = str(data_dir)
    # a console for people: warnings in plain text (LOG_LEVEL / LOG_JSON still choose otherwise)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("LOG_JSON", "false")
    _ensure_demo_secrets(data_dir)
    _env_loaded = True  # the demo starts its own simulators: last run's addresses are not read
    with contextlib.ExitStack() as stack:
        started = start_demo_simulators(os.environ, stack)
        for name, url in started:
            console.print(f"{name}: no credentials set, using its simulator at {url}")
        _write_demo_providers(data_dir, {name for name, _url in started})
        reset_settings_cache()
        from phoneops.core.demo import prepare_demo

        settings = _bootstrap(service=True, need_database=False)
        prepare_demo(settings, console)
        from phoneops.demo_seed import needs_seeding, seed_demo

        if needs_seeding():  # the first start runs the first syncs, so every page has data
            seed_demo(console)
        from phoneops.demo_live import start_live_feed

        feed = start_live_feed(os.environ, stack)  # Voluum live events on a local SQS queue (moto)
        if feed is not None:
            console.print(f"Voluum live events: a local SQS queue (moto) at {feed.queue_url}, fed every few "
                          "seconds and consumed here (Voluum → Live events)", soft_wrap=True)
        console.print(f"[bold]phoneops demo[/bold] on http://127.0.0.1:{port}  (Ctrl-C to stop) · "
                      f"API docs: http://127.0.0.1:{port}/docs", soft_wrap=True)
        console.print(f"The CLI uses this demo from this folder as is; from any other folder: "
                      f"[bold]export DATA_DIR={data_dir}[/bold] (database, secrets and simulators are found there)",
                      soft_wrap=True)  # a path to copy: never broken across lines
        serve(host="127.0.0.1", port=port, embedded_worker=True)


def _write_demo_providers(data_dir: Path, simulated: set[str]) -> None:
    """What the CLI needs to reach this demo's simulators (addresses and their fixed test credentials)."""
    from phoneops.simulators.demo import PROVIDERS

    lines = ["# Written by `phoneops demo`: the simulators it serves. Every phoneops command reads this file",
             "# (for providers without credentials of their own). Delete it to stop using them."]
    for provider in PROVIDERS:
        if provider.name in simulated:  # never a real provider's credentials
            lines += [f"{n}={os.environ[n]}" for n in provider.settings("") if os.environ.get(n)]
    path = data_dir / DEMO_PROVIDERS
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


@app.command("live-events")
def live_events(drain: Annotated[bool, typer.Option(help="Stop once the queue is empty")] = False) -> None:
    """Consume Voluum live events from AWS SQS (same as `phoneops voluum consume`)."""
    from phoneops.voluum.cli import consume

    consume(drain=drain, wait=20, visibility=60, max_batches=None)


# --- users and tokens --------------------------------------------------------------------------


@user_app.command("create")
def user_create(
    username: str,
    role: Annotated[str, typer.Option(help="viewer, operator or admin")] = "viewer",
    password: Annotated[str | None, typer.Option(help="Prompted for when omitted")] = None,
) -> None:
    from phoneops.core.db import session_scope
    from phoneops.core.security import create_user

    _bootstrap()
    if password is None:
        password = getpass.getpass("password: ")
    try:
        with session_scope() as session:
            user = create_user(session, cli_actor(), username, password, role)
            console.print(f"created user [bold]{user.username}[/bold] ({user.role})")
    except AppError as exc:
        raise fail(exc) from None


@user_app.command("list")
def user_list() -> None:
    from phoneops.core.db import session_scope
    from phoneops.core.security import list_users

    _bootstrap()
    table = Table("username", "role", "active", "last login")
    with session_scope() as session:
        for u in list_users(session):
            table.add_row(u.username, u.role, "yes" if u.is_active else "no",
                          u.last_login_at.isoformat(timespec="seconds") if u.last_login_at else "-")
    console.print(table)


@user_app.command("disable")
def user_disable(
    username: str,
    keep_tokens: Annotated[bool, typer.Option("--keep-tokens", help="Keep the API tokens (they work again on enable)")]
    = False,
) -> None:
    """Disable a user: their sessions end at once; their API tokens are revoked unless --keep-tokens."""
    from phoneops.core.db import session_scope
    from phoneops.core.security import set_user_active

    _bootstrap()
    try:
        with session_scope() as session:
            set_user_active(session, cli_actor(), username, False, revoke_tokens=not keep_tokens)
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"disabled {username}; their sessions and tokens no longer work")


@user_app.command("enable")
def user_enable(username: str) -> None:
    """Enable a disabled user (they log in again; revoked tokens stay revoked)."""
    from phoneops.core.db import session_scope
    from phoneops.core.security import set_user_active

    _bootstrap()
    try:
        with session_scope() as session:
            set_user_active(session, cli_actor(), username, True)
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"enabled {username}")


@user_app.command("role")
def user_role(username: str, role: Annotated[str, typer.Argument(help="viewer, operator or admin")]) -> None:
    """Change a user's role (takes effect on their next request)."""
    from phoneops.core.db import session_scope
    from phoneops.core.security import set_role

    _bootstrap()
    try:
        with session_scope() as session:
            set_role(session, cli_actor(), username, role)
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"{username} is now {role}")


@user_app.command("password")
def user_password(
    username: str,
    password: Annotated[str | None, typer.Option(help="Prompted for when omitted")] = None,
    revoke_tokens: Annotated[bool, typer.Option("--revoke-tokens", help="Also revoke the user's API tokens")] = False,
) -> None:
    """Set a user's password (a reset): every session of the user ends at once."""
    from phoneops.core.db import session_scope
    from phoneops.core.security import set_password

    _bootstrap()
    if password is None:
        password = getpass.getpass("new password: ")
    try:
        with session_scope() as session:
            set_password(session, cli_actor(), username, password, revoke_tokens=revoke_tokens)
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"password of {username} set; their sessions ended" + ("; tokens revoked" if revoke_tokens else ""))


@token_app.command("create")
def token_create(
    username: str,
    name: Annotated[str, typer.Option()] = "cli",
    scope: Annotated[list[str] | None, typer.Option(
        "--scope", help="read, numbers:write, cleaning, hlr:spend, imei:spend, admin (repeat; default: the role's)"
    )] = None,
    expires_in_days: Annotated[int | None, typer.Option(help="Days until it stops working (default: never)")] = None,
) -> None:
    """Create an API token; the plaintext is printed once."""
    from phoneops.core.db import session_scope
    from phoneops.core.security import create_token

    _bootstrap()
    try:
        with session_scope() as session:
            token, plaintext = create_token(session, cli_actor(), username, name, scopes=scope or None,
                                            expires_in_days=expires_in_days)
            token_id, scopes, expires = token.id, token.scopes or [], token.expires_at
    except AppError as exc:
        raise fail(exc) from None
    until = f", expires {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
    console.print(f"token id {token_id} for {username}, scopes {' '.join(scopes)}{until} (shown once):")
    print(plaintext)


@token_app.command("list")
def token_list(username: Annotated[str | None, typer.Argument(help="Only this user's tokens")] = None) -> None:
    """List tokens: scopes, expiry, last use, state."""
    from rich.table import Table

    from phoneops.core.db import session_scope, utcnow
    from phoneops.core.security import get_user, list_tokens

    _bootstrap()
    table = Table("id", "name", "user", "scopes", "expires", "last used", "state")
    try:
        with session_scope() as session:
            user_id = get_user(session, username).id if username else None
            now = utcnow()
            for token, owner in list_tokens(session, user_id):
                state = "revoked" if token.revoked_at else (
                    "expired" if token.expires_at and token.expires_at <= now else "active")
                table.add_row(
                    str(token.id), token.name, owner, " ".join(token.scopes) if token.scopes else "(all of the role)",
                    f"{token.expires_at:%Y-%m-%d %H:%M}" if token.expires_at else "never",
                    f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "-", state,
                )
    except AppError as exc:
        raise fail(exc) from None
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    from phoneops.core.access import token_for
    from phoneops.core.db import session_scope
    from phoneops.core.security import revoke_token

    _bootstrap()
    try:
        with session_scope() as session:
            revoke_token(session, cli_actor(), token_for(session, cli_actor(), token_id))
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"revoked token {token_id}")


# --- jobs --------------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(status: str | None = None, kind: str | None = None, limit: int = 20) -> None:
    from rich import box

    from phoneops.core.db import session_scope
    from phoneops.core.jobs import list_jobs

    _bootstrap()
    # Full ids (they are what `jobs follow` takes) even at 80 columns: no frame, the other columns wrap.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("id / kind", no_wrap=True, min_width=36)
    table.add_column("status", overflow="fold")
    table.add_column("done", justify="right", overflow="fold")
    table.add_column("created (UTC)", overflow="fold")
    with session_scope() as session:
        for j in list_jobs(session, kind=kind, status=status, limit=limit):
            table.add_row(f"{j.id}\n[dim]{j.kind}[/dim]", j.status, f"{j.progress_done}/{j.progress_total or '?'}",
                          j.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)


@jobs_app.command("follow")
def jobs_follow(job_id: str) -> None:
    _bootstrap()
    status = follow_job(job_id)
    raise typer.Exit(0 if status == "succeeded" else 1)


@jobs_app.command("sample")
def jobs_sample(steps: int = 20, delay: float = 0.05, wait: bool = True) -> None:
    """Start the sample counting job (proves the worker setup end to end)."""
    from phoneops.core.db import session_scope
    from phoneops.core.sample import start_sample

    _bootstrap()
    try:
        with session_scope() as session:
            job_id = start_sample(session, cli_actor(), steps, delay).id
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"job {job_id} queued")
    if wait:
        follow_job(job_id)


# --- backup and restore ------------------------------------------------------------------------


def _files_note(settings: Settings) -> str:
    from phoneops.privacy.backup import files_note

    return files_note(settings.storage_backend, settings.storage_root, settings.s3_bucket, settings.s3_prefix)


@app.command()
def backup(path: Annotated[Path, typer.Argument(help="Where to write the backup")]) -> None:
    """Back up the database (SQLite: online backup API; PostgreSQL: pg_dump --format=custom)."""
    from phoneops.privacy.backup import backup as do_backup

    settings = _settings()
    try:
        result = do_backup(settings.database_url, path)
    except AppError as exc:
        raise fail(exc) from None
    table = Table("table", "rows")
    for name, count in result.counts.items():
        table.add_row(name, str(count))
    console.print(table)
    console.print(f"backup written to {result.path} ({result.size:,} bytes, {result.backend}, "
                  f"{sum(result.counts.values()):,} rows)")
    console.print(f"[yellow]{_files_note(settings)}[/yellow]")


@app.command()
def restore(
    path: Annotated[Path, typer.Argument(help="A backup made by `phoneops backup`")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the current database is replaced")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="SQLite: restore although -wal/-shm files exist (only after a crash: a running process "
        "would keep writing to the replaced file)")] = False,
) -> None:
    """Replace the database with a backup (the current SQLite file is kept aside), then migrate to the heads."""
    from phoneops.privacy.backup import check_sqlite_backup, is_sqlite
    from phoneops.privacy.backup import restore as do_restore

    settings = _settings()
    try:
        if is_sqlite(settings.database_url):
            check_sqlite_backup(path)  # refuse a wrong file before asking anything
        if not yes:
            raise AppError("restoring replaces the current database: run again with --yes to confirm")
        result = do_restore(settings.database_url, path, force=force)
    except AppError as exc:
        raise fail(exc) from None
    if result.previous_copy is not None:
        console.print(f"the previous database was kept at {result.previous_copy}")
    console.print(f"restored {result.target} from {path} ({sum(result.counts.values()):,} rows); migrated to heads")
    console.print(f"[yellow]{_files_note(settings)}[/yellow]")


def _mount_domains() -> None:
    from phoneops.registry import domain_modules

    for module in domain_modules("cli"):
        app.add_typer(module.app, name=module.NAME)


def main() -> None:
    os.umask(0o077)  # every file and folder the service creates is its user's only (0600 / 0700)
    _mount_domains()
    app()
