"""The deployment files: the Dockerfile linted by hadolint, compose.yaml validated against the
Compose Specification schema, the Caddyfile by Caddy itself, and the facts the set-up relies
on (two webhook workers behind Caddy, a one-shot migration, no secrets in the files).

Images cannot be pulled on the development machines, so nothing here builds or starts them;
`troly kb build` (the image's build step) is run for real."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from bot.settings import Settings, load_settings
from knowledge import Knowledge
from tests.conftest import ROOT, require

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
ENV_EXAMPLE = ROOT / "deploy" / "troly.env.example"
UNIT = ROOT / "deploy" / "troly.service"
DEPLOY_FILES = [DOCKERFILE, COMPOSE, CADDYFILE, ENV_EXAMPLE, UNIT, ROOT / ".dockerignore"]
SECRET_NAMES = ("TELEGRAM_BOT_TOKEN", "ZALO_BOT_TOKEN", "WEBHOOK_SECRET", "POSTGRES_PASSWORD")
TOKEN_SHAPE = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}\b")


def tool(name: str) -> str:
    """A linter installed with the dev extras (next to this Python, or on PATH)."""
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.is_file() else shutil.which(name)
    require(path is not None, f"{name} is not installed (pip install -e '.[dev]')")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def env_example() -> dict[str, str]:
    """NAME=value lines, and commented-out ``# NAME=value`` examples (value "#": unset)."""
    values: dict[str, str] = {}
    for raw in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"(#\s*)?([A-Z][A-Z0-9_]*)=(.*)", raw.strip())
        if match and match.group(1):
            values.setdefault(match.group(2), "#")
        elif match:
            values[match.group(2)] = match.group(3)
    return values


# --------------------------------------------------------------------------- Dockerfile


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def test_dockerfile_facts() -> None:
    rows = dockerfile_instructions()
    stages = [rest for word, rest in rows if word == "FROM"]
    assert stages and all(re.match(r"python:3\.11\.\d+-slim", s) for s in stages)
    final = rows[max(i for i, (word, _) in enumerate(rows) if word == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    installs = [rest for word, rest in rows if word == "RUN" and "pip install" in rest]
    assert installs == ["pip install --no-cache-dir ."]  # the project, no dev extras
    runs = " ".join(rest for word, rest in final if word == "RUN")
    assert "troly kb check" in runs and "troly kb build" in runs
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert "PYTHONUNBUFFERED=1" in env and "KNOWLEDGE_CACHE_DIR=/opt/troly/cache" in env
    assert "WEBHOOK_HOST=0.0.0.0" in env and "WEBHOOK_PORT=8080" in env
    assert "TASKS_DIR=/opt/troly/tasks" in env  # the console can add tasks out of the box
    assert ("VOLUME", '["/opt/troly/var", "/opt/troly/tasks"]') in final
    assert ("EXPOSE", "8080") in final
    [healthcheck] = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert "/healthz" in healthcheck and "urllib.request" in healthcheck
    assert ("ENTRYPOINT", '["troly"]') in final and ("CMD", '["run"]') in final


def test_healthcheck_command_is_valid_python() -> None:
    [healthcheck] = [rest for word, rest in dockerfile_instructions() if word == "HEALTHCHECK"]
    exec_form = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert exec_form[:2] == ["python", "-c"]
    compile(exec_form[2], "<healthcheck>", "exec")
    # Polling mode (no WEBHOOK_BASE_URL): nothing to probe, healthy.
    env = {k: v for k, v in os.environ.items() if k != "WEBHOOK_BASE_URL"}
    assert subprocess.run([sys.executable, "-c", exec_form[2]], env=env).returncode == 0


def test_dockerignore_keeps_the_context_small_and_the_sources_in() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for name in (".git", ".venv", "var", "**/node_modules", "tests", "deploy/troly.env", ".env"):
        assert name in ignored
    copied = {
        part
        for word, rest in dockerfile_instructions()
        if word == "COPY" and "--from" not in rest
        for part in rest.split()[:-1]
    }
    assert copied == {"pyproject.toml", "README.md", "alembic.ini", *PACKAGES}
    assert not copied & ignored


PACKAGES = ("bot", "handlers", "knowledge", "scheduler", "web")


def test_every_data_file_is_in_the_package() -> None:
    """`pip install .` (the image) ships each YAML file the packages read."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]
    for package in PACKAGES:
        folder = ROOT / package
        shipped = {p for pattern in patterns.get(package, []) for p in folder.glob(pattern)}
        assert set(folder.rglob("*.yaml")) <= shipped, package


def test_kb_build_warms_the_cache(
    knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The image's build step: the index is written where `troly run` will look for it."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for old in Path(os.environ["KNOWLEDGE_CACHE_DIR"]).glob("embeddings-*.pickle"):
        shutil.copy(old, cache)  # the entries' embeddings, so as not to compute them again
    monkeypatch.setenv("KNOWLEDGE_CACHE_DIR", str(cache))
    monkeypatch.delenv("KNOWLEDGE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["kb", "build"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Đã lập chỉ mục {len(knowledge.base.entries)} mục kiến thức")
    assert len(list(cache.glob("knowledge-*.pickle"))) == 1


# --------------------------------------------------------------------------- compose.yaml


def test_compose_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    from jsonschema import Draft202012Validator

    schema_file = files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    assert schema["title"] == "Compose Specification"
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft202012Validator(schema).iter_errors(compose)
    ]
    assert errors == []


def test_compose_runs_two_webhook_workers_after_a_one_shot_migration(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "worker1", "worker2", "caddy"}
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade"] and migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker1", "worker2"):
        worker = services[name]
        assert worker["image"] == migrate["image"] and worker["build"] == "."
        assert worker["command"] == ["run"]
        assert worker["env_file"] == "deploy/troly.env"
        assert worker["environment"] == {"WEBHOOK_HOST": "0.0.0.0", "WEBHOOK_PORT": "8080"}
        assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "ports" not in worker  # reached through Caddy only
        # one tasks folder for all: a file uploaded through one worker is there for the other
        assert worker["volumes"] == ["tasks:/opt/troly/tasks"]
    # Webhook mode comes from the environment file: a base URL (and a secret to fill in).
    example = env_example()
    assert example["WEBHOOK_BASE_URL"].startswith("https://")
    assert example["DATABASE_URL"].startswith("postgresql+asyncpg://troly:")
    assert example["DATABASE_URL"].endswith("@postgres:5432/troly")


def test_compose_postgres_keeps_its_data_and_reports_health(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pgdata:/var/lib/postgresql/data" in postgres["volumes"]
    assert "pgdata" in compose["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "ports" not in postgres


def test_caddy_balances_both_workers(compose: dict[str, Any]) -> None:
    caddy = compose["services"]["caddy"]
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    text = CADDYFILE.read_text(encoding="utf-8")
    [upstreams] = re.findall(r"^\s*reverse_proxy\s+([^{]+)\{", text, re.MULTILINE)
    assert upstreams.split() == ["worker1:8080", "worker2:8080"]
    assert "health_uri /healthz" in text
    assert "{$TROLY_DOMAIN}" in text and "TROLY_DOMAIN" in env_example()


def test_caddy_accepts_the_caddyfile(tmp_path: Path) -> None:
    env = {**os.environ, "TROLY_DOMAIN": "troly.example.vn", "HOME": str(tmp_path)}
    env["XDG_DATA_HOME"] = env["XDG_CONFIG_HOME"] = str(tmp_path)
    result = subprocess.run(
        [tool("caddy"), "adapt", "--config", str(CADDYFILE), "--validate"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    levels = {json.loads(line).get("level") for line in result.stderr.splitlines() if line}
    assert levels <= {"info", "debug"}, result.stderr  # no warning (e.g. "not formatted")
    adapted = json.loads(result.stdout)
    assert "troly.example.vn" in json.dumps(adapted)


# --------------------------------------------------------------------------- settings, secrets


def test_env_example_documents_every_setting() -> None:
    documented = set(env_example())
    assert {name.upper() for name in Settings.model_fields} <= documented


def test_env_example_filled_in_is_a_valid_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [*Settings.model_fields, "KNOWLEDGE_CACHE_DIR"]:
        monkeypatch.delenv(name.upper(), raising=False)
    filled = ENV_EXAMPLE.read_text(encoding="utf-8")
    filled = filled.replace("TELEGRAM_BOT_TOKEN=\n", "TELEGRAM_BOT_TOKEN=123456789:AAExample\n")
    filled = filled.replace("WEBHOOK_SECRET=\n", "WEBHOOK_SECRET=a-random-secret-value\n")
    (tmp_path / "troly.env").write_text(filled, encoding="utf-8")
    settings = load_settings(_env_file=tmp_path / "troly.env")
    assert settings.webhook_base_url == "https://troly.example.gov.vn"
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.webhook_host == "127.0.0.1"  # compose.yaml opens it to Caddy


def test_env_example_without_secrets_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Copied and not filled in, it does not start: the webhook secret is missing."""
    from bot.settings import SettingsError

    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    with pytest.raises(SettingsError, match="cần đặt WEBHOOK_SECRET"):
        load_settings(_env_file=ENV_EXAMPLE)


def test_no_secrets_in_the_deployment_files() -> None:
    for path in DEPLOY_FILES:
        text = path.read_text(encoding="utf-8")
        assert not TOKEN_SHAPE.search(text), path
    example = env_example()
    for name in SECRET_NAMES:
        assert example[name] == "", name
    password = re.search(r"://troly:([^@]*)@", example["DATABASE_URL"])
    assert password is not None and password.group(1) == "CHANGE_ME"
    assert "deploy/troly.env" in (ROOT / ".gitignore").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- systemd


def test_systemd_unit() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT, encoding="utf-8")
    service = unit["Service"]
    assert service["User"] == "troly"
    assert service["EnvironmentFile"] == "/etc/troly/troly.env"
    assert service["ExecStart"] == "/opt/troly/.venv/bin/troly run"
    assert service["ExecStartPre"] == "/opt/troly/.venv/bin/troly db upgrade"
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/opt/troly/var"
    assert "TASKS_DIR=/opt/troly/var/tasks" in UNIT.read_text(encoding="utf-8")  # inside var/
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_accepts_the_unit() -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(
        [analyze, "verify", str(UNIT)], capture_output=True, text=True, check=False, timeout=60
    )
    # The only complaint allowed: the program is not installed on this machine.
    complaints = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "/opt/troly/.venv/bin/troly is not executable" not in line
    ]
    assert complaints == []
