"""The deployment files (Dockerfile, docker-compose.yml, deploy/) agree with the product they run.

No container engine is needed: the files are parsed and checked against the settings, the CLI and each
other; the container health-check script runs for real against a database.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from phoneops.settings import Settings
from support import free_port, process_env

ROOT = Path(__file__).resolve().parents[2]
# Variables only docker compose reads (interpolation in docker-compose.yml, never passed to phoneops).
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "PHONEOPS_HTTP_BIND", "PHONEOPS_HTTP_PORT", "COMPOSE_PROFILES"}
SETTING_NAMES = {field.alias for field in Settings.model_fields.values() if field.alias}
SECRET_SETTINGS = {
    field.alias for field in Settings.model_fields.values()
    if field.alias and SecretStr in (getattr(field.annotation, "__args__", None) or (field.annotation,))
}


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]  # type: ignore[no-any-return]


def ours(service: dict[str, Any]) -> bool:
    """A service running the phoneops image (built from the Dockerfile)."""
    return "build" in service or str(service.get("image", "")).startswith("phoneops")


def command(service: dict[str, Any]) -> list[str]:
    value = service.get("command") or []
    return value.split() if isinstance(value, str) else [str(v) for v in value]


def replicas(service: dict[str, Any]) -> int:
    return int((service.get("deploy") or {}).get("replicas", 1))


def one_shot(name: str) -> bool:
    """Runs once: never restarted, and the others wait for it to complete."""
    if services()[name].get("restart", "no") != "no":
        return False
    waiting = [s for s in services().values() if (s.get("depends_on") or {}).get(name, {}).get("condition")
               == "service_completed_successfully"]
    return len(waiting) > 0


@cache
def cli_commands() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "phoneops", "--help"], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}).stdout
    return set(re.findall(r"^│ ([a-z][a-z-]*)\s{2,}", out, re.M))


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def exec_form(instruction: str) -> list[str]:
    """The JSON (exec) form of the last ENTRYPOINT / CMD of the final stage."""
    found = re.findall(rf"^{instruction}\s+(\[.*\])\s*$", dockerfile(), re.M)
    assert found, f"no {instruction} in exec form"
    import json

    return [str(v) for v in json.loads(found[-1])]


# --- docker-compose.yml ------------------------------------------------------------------------


def test_two_api_processes_two_workers_migrations_and_the_sqs_consumer() -> None:
    by_command: dict[str, int] = {}
    for service in services().values():
        if ours(service):
            by_command[command(service)[0]] = by_command.get(command(service)[0], 0) + replicas(service)
    assert by_command == {"serve": 2, "worker": 2, "migrate": 1, "live-events": 1}
    assert {"postgres", "redis"} <= set(services())
    assert services()["postgres"]["image"].startswith("postgres:")
    assert services()["redis"]["image"].startswith("redis:")


def test_every_long_running_service_has_a_health_check_or_is_one_shot() -> None:
    for name, service in services().items():
        check = service.get("healthcheck") or {}
        if check.get("disable"):
            assert one_shot(name), f"{name}: health check disabled but it is not a one-shot service"
            continue
        assert check.get("test"), f"{name}: no health check"
        assert service.get("restart") in ("unless-stopped", "always"), f"{name}: not restarted when it stops"


def test_services_start_after_their_dependencies_are_ready() -> None:
    assert one_shot("migrate")
    assert command(services()["migrate"]) == ["migrate"]
    assert services()["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, service in services().items():
        if ours(service) and name != "migrate":
            assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
            assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
    proxy_waits_for = services()["proxy"]["depends_on"]
    assert {n for n, s in services().items() if command(s)[:1] == ["serve"]} <= set(proxy_waits_for)


def test_compose_sets_only_real_settings_and_no_secret() -> None:
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    for name, service in services().items():
        if not ours(service):
            continue
        assert service.get("env_file") in (".env", [".env"]), f"{name}: secrets must come from .env"
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), f"{name}: write environment as a mapping"
        for variable, value in environment.items():
            assert variable in SETTING_NAMES, f"{name}: {variable} is not a phoneops setting"
            assert variable in documented, f"{name}: {variable} is not in .env.example"
            assert variable not in SECRET_SETTINGS, f"{name}: secret {variable} belongs in .env"
            assert not re.search(r"://[^:/@]+:[^$][^@]*@", str(value)), f"{name}: {variable} holds a password"
    text = (ROOT / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert interpolated - COMPOSE_ONLY <= SETTING_NAMES, interpolated - COMPOSE_ONLY - SETTING_NAMES
    assert "POSTGRES_PASSWORD" in interpolated  # the database password is never written in the file
    postgres_env = services()["postgres"]["environment"]
    assert postgres_env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")


def test_volumes_are_named_and_shared_where_needed() -> None:
    declared = set(compose().get("volumes") or {})
    assert {"db-data", "redis-data", "files"} <= declared
    for name, service in services().items():
        for mount in service.get("volumes") or []:
            source, _target, *mode = str(mount).split(":")
            if source.startswith((".", "/")):
                # Only read-only configuration files may come from the host.
                assert source.startswith("./deploy/") and mode == ["ro"], f"{name}: bind mount {mount}"
            else:
                assert source in declared, f"{name}: volume {source!r} is not a named volume"
    assert "db-data:/var/lib/postgresql/data" in services()["postgres"]["volumes"]
    assert any(str(v).startswith("redis-data:") for v in services()["redis"]["volumes"])
    files = "files:/var/lib/phoneops/files"
    for name, service in services().items():
        if ours(service):
            assert files in service["volumes"], f"{name} does not share the files volume"
            assert service["environment"]["STORAGE_ROOT"] == "/var/lib/phoneops/files"


def test_compose_commands_are_real_cli_commands_and_options() -> None:
    commands = cli_commands()
    assert {"serve", "worker", "migrate", "live-events"} <= commands
    serve_help = subprocess.run(
        [sys.executable, "-m", "phoneops", "serve", "--help"], capture_output=True, text=True, check=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    ).stdout
    for name, service in services().items():
        if not ours(service):
            continue
        argv = command(service)
        assert argv[0] in commands, f"{name}: {argv[0]} is not a phoneops command"
        if argv[0] == "serve":
            for option in (a for a in argv if a.startswith("--")):
                assert option in serve_help, f"{name}: serve has no {option}"


def test_the_proxy_upstream_lists_both_api_services() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    upstream = re.search(r"upstream\s+(\w+)\s*\{(.*?)\}", conf, re.S)
    assert upstream
    servers = set(re.findall(r"^\s*server\s+([\w.-]+:\d+)", upstream.group(2), re.M))
    apis = {n: command(s) for n, s in services().items() if command(s)[:1] == ["serve"]}
    expected = {f"{n}:{argv[argv.index('--port') + 1]}" for n, argv in apis.items()}
    assert len(expected) == 2
    assert servers == expected
    assert f"proxy_pass http://{upstream.group(1)};" in conf
    # The API trusts X-Forwarded-For from the proxy: the proxy must overwrite what a client sent.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf
    assert "$proxy_add_x_forwarded_for" not in conf
    proxy = services()["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert [p.rsplit(":", 1)[1] for p in proxy["ports"]] == ["80"]
    assert not any("ports" in s for n, s in services().items() if n != "proxy")  # one way in


# --- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_runs_real_commands_as_a_non_root_user() -> None:
    text = dockerfile()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert stages and all(s.startswith("python:3.11-slim") for s in stages)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert exec_form("ENTRYPOINT") == ["phoneops"]
    assert exec_form("CMD")[0] in cli_commands()
    check = re.search(r"^HEALTHCHECK\s.*?CMD\s+(\[.*\])", text, re.M | re.S)
    assert check and "/health" in check.group(1)
    installs = re.findall(r"pip (?:install|wheel)[^\n]*", text)
    assert installs and not any("[dev" in line or "bench" in line or " -e " in line for line in installs)


def test_no_secret_reaches_the_image() -> None:
    text = dockerfile()
    for name in SECRET_SETTINGS | {"SESSION_SECRET", "AES_KEYS", "BLIND_INDEX_KEY", "POSTGRES_PASSWORD"}:
        assert not re.search(rf"^(ENV|ARG)\b.*\b{name}\b", text, re.M), name
    assert not re.search(r"^COPY\s+\.\s", text, re.M)  # only named paths are copied in
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", "*.env", "data", ".git", ".venv"} <= ignored
    # ... while everything the image is built from stays in the build context.
    copied = [src for line in re.findall(r"^COPY\s+(?!--from)(.*)$", text, re.M)
              for src in [w for w in line.split() if not w.startswith("--")][:-1]]
    assert {"pyproject.toml", "constraints.txt", "README.md", "src", "deploy/healthcheck.py"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source not in ignored and source.split("/")[0] not in ignored, f"{source} is excluded by .dockerignore"


# --- the health-check script -------------------------------------------------------------------


def healthcheck(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "deploy" / "healthcheck.py"), *args],
                          capture_output=True, text=True, timeout=60, env=env, check=False)


def test_healthcheck_script_reports_a_reachable_and_an_unreachable_database(tmp_path: Path) -> None:
    env = process_env(f"sqlite:///{tmp_path / 'h.db'}", DATA_DIR=str(tmp_path / "data"))
    env.pop("REDIS_URL", None)
    assert healthcheck("worker", env=env).returncode == 0
    assert healthcheck("database", env=env).returncode == 0
    down = process_env(f"postgresql://nobody@127.0.0.1:{free_port()}/none", DATA_DIR=str(tmp_path / "data"))
    result = healthcheck("database", env=down)
    assert result.returncode == 1
    assert "unhealthy: database: OperationalError" in result.stderr


def test_healthcheck_script_reports_an_unreachable_queue(tmp_path: Path) -> None:
    env = process_env(f"sqlite:///{tmp_path / 'h.db'}", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    result = healthcheck("worker", env=env)
    assert result.returncode == 1
    assert "unhealthy: job queue (RedisHuey)" in result.stderr
    assert "database" not in result.stderr


def test_healthcheck_script_api_mode_and_usage(tmp_path: Path) -> None:
    env = process_env(f"sqlite:///{tmp_path / 'h.db'}")
    closed = healthcheck("api", f"http://127.0.0.1:{free_port()}/health", env=env)
    assert closed.returncode == 1
    assert "did not answer" in closed.stderr
    assert healthcheck("nonsense", env=env).returncode == 2


# --- README ------------------------------------------------------------------------------------


def test_readme_deployment_section() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Deployment\n(.*?)(?=^## )", readme, re.M | re.S)
    assert match, "README has no Deployment section"
    section = match.group(1)
    for needed in ("docker compose", "STORAGE_BACKEND=s3", "S3_BUCKET", "phoneops migrate", "SECURE_COOKIES",
                   "Backups", "--workers", *sorted(COMPOSE_ONLY)):
        assert needed in section, needed
    assert readme.index("## Deployment") < readme.index("## Tests")
