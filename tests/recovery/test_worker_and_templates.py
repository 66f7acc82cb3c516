"""The in-process worker (woken by NOTIFY), per-app templates, backends, settings, CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.mail.backends import ConsoleBackend, MemoryBackend
from oneauth.mail.render import Renderer, RenderError
from oneauth.mail.worker import DeliveryWorker, WorkerConfig
from oneauth.services import Services
from oneauth.settings import Settings, SettingsError

from .conftest import post, query, signup, unique_email


async def test_in_process_worker_delivers_on_notify(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    live = dataclasses.replace(settings, email_worker="inprocess", email_sweep_interval=3600)
    app_asgi = create_app(live, configure_logging=False)
    async with app_asgi.router.lifespan_context(app_asgi):
        services = app_asgi.state.services
        assert isinstance(services, Services)
        assert services.delivery is not None
        mailbox = services.delivery.backend
        assert isinstance(mailbox, MemoryBackend)
        app = provision()
        addr = unique_email()
        transport = httpx.ASGITransport(app=app_asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert (await signup(c, app, addr)).status_code == 201
        # The sweep is an hour away: only the NOTIFY can wake the worker. The wait
        # is generous because a loaded CI machine is slow, not because delivery is.
        for _ in range(600):  # up to 30 s
            if mailbox.to(addr):
                break
            await asyncio.sleep(0.05)
        assert len(mailbox.to(addr)) == 1


async def test_per_app_templates_override_the_defaults(
    tmp_path: Path,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    app, other = provision(name="Custom"), provision(name="Plain")
    folder = tmp_path / "apps" / app.app_id
    folder.mkdir(parents=True)
    (folder / "reset_password.subject.txt").write_text("{{ app_name }}: new password please")
    (folder / "reset_password.html").write_text("<p>{{ app_name }} <a href='{{ link }}'>go</a></p>")
    worker = DeliveryWorker(
        dataclasses.replace(services.settings, email_templates_dir=str(tmp_path)),
        services.pool,
        services.registry,
        services.router,
        services.box,
        MemoryBackend(),
        WorkerConfig(),
    )
    addr = unique_email()
    for target in (app, other):
        await signup(client, target, addr)
        await post(client, target, "/v1/password/reset/request", {"email": addr})
        await worker.deliver_app(target)
    assert isinstance(worker.backend, MemoryBackend)
    subjects = [str(m.message["Subject"]) for m in worker.backend.to(addr)]
    assert "Custom: new password please" in subjects
    assert "Reset your Plain password" in subjects
    custom = next(m for m in worker.backend.to(addr) if "Custom:" in str(m.message["Subject"]))
    assert "token=" in custom.text  # the text part fell back to the default template


def test_templates_are_sandboxed_and_strict(tmp_path: Path) -> None:
    (tmp_path / "email_otp.txt").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(RenderError):
        Renderer(tmp_path).render("app", "email_otp", {"app_name": "x", "code": "1"})
    with pytest.raises(RenderError):  # a missing value is an error, not an empty link
        Renderer().render("app", "reset_password", {"app_name": "x", "email": "a@b.c"})


async def test_broken_template_dead_letters_instead_of_sending(
    tmp_path: Path,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
) -> None:
    app = provision()
    (tmp_path / "verify_email.txt").write_text("{{ no_such_value }}")
    backend = MemoryBackend()
    worker = DeliveryWorker(
        dataclasses.replace(services.settings, email_templates_dir=str(tmp_path)),
        services.pool,
        services.registry,
        services.router,
        services.box,
        backend,
        WorkerConfig(),
    )
    await signup(client, app, unique_email())
    assert (await worker.deliver_app(app)).dead == 1
    assert backend.messages == []
    [row] = await query(services, app, "SELECT status, secrets_sealed FROM outbox")
    assert (row["status"], row["secrets_sealed"]) == ("dead", None)


async def test_console_backend_prints_the_link(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    out = io.StringIO()
    worker = DeliveryWorker(
        services.settings,
        services.pool,
        services.registry,
        services.router,
        services.box,
        ConsoleBackend(stream=out),
        WorkerConfig(),
    )
    addr = unique_email()
    await signup(client, app, addr)
    await worker.deliver_app(app)
    printed = out.getvalue()
    assert f"To: {addr}" in printed
    assert f"http://testserver/apps/{app.app_id}/verify?token=" in printed


def test_email_settings_are_validated() -> None:
    assert Settings.from_env({}).mail_backend == "console"
    assert Settings.from_env({"ONEAUTH_ENV": "test"}).mail_backend == "memory"
    assert Settings.from_env({"ONEAUTH_ENV": "test"}).mail_worker_inprocess is False
    s = Settings.from_env({"ONEAUTH_SMTP_TLS": "tls", "ONEAUTH_EMAIL_BACKEND": "smtp"})
    assert s.smtp_effective_port == 465
    for env, message in [
        ({"ONEAUTH_EMAIL_BACKEND": "carrier-pigeon"}, "ONEAUTH_EMAIL_BACKEND"),
        ({"ONEAUTH_SMTP_TLS": "maybe"}, "ONEAUTH_SMTP_TLS"),
        ({"ONEAUTH_SMTP_PORT": "0"}, "ONEAUTH_SMTP_PORT"),
        ({"ONEAUTH_SMTP_TIMEOUT": "0"}, "ONEAUTH_SMTP_TIMEOUT"),
        ({"ONEAUTH_EMAIL_FROM": "not an address"}, "ONEAUTH_EMAIL_FROM"),
        ({"ONEAUTH_SMTP_USERNAME": "u"}, "ONEAUTH_SMTP_USERNAME"),
        (
            {
                "ONEAUTH_SMTP_HOST": "mail.example.com",
                "ONEAUTH_SMTP_TLS": "none",
                "ONEAUTH_SMTP_USERNAME": "u",
                "ONEAUTH_SMTP_PASSWORD": "p",
            },
            "in clear",
        ),
    ]:
        with pytest.raises(SettingsError, match=message):
            Settings.from_env(env)


def test_production_refuses_console_mail() -> None:
    prod = {
        "ONEAUTH_ENV": "production",
        "ONEAUTH_DATABASE_URL": "postgresql://svc:s3cret@db.internal:5432/oneauth",
        "ONEAUTH_PUBLIC_URL": "https://auth.example.com",
        "ONEAUTH_MASTER_KEY": "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s",
    }
    assert Settings.from_env(prod).mail_from == "no-reply@auth.example.com"
    with pytest.raises(SettingsError, match="must be smtp in production"):
        Settings.from_env({**prod, "ONEAUTH_EMAIL_BACKEND": "console"})


def test_app_policy_validates_mail_settings(provision: Callable[..., AppRecord]) -> None:
    from oneauth.apps.lifecycle import AppError

    for bad in (
        {"passwordless": "yes"},
        {"email_from": "Mallory <m@x.example>"},
        {"email_from_name": "Evil\r\nBcc: victim@example.com"},
    ):
        with pytest.raises(AppError):
            provision(app_settings=bad)


def test_cli_worker_once(
    settings: Settings,
    provision: Callable[..., AppRecord],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from oneauth.cli.main import main

    monkeypatch.setenv("ONEAUTH_ENV", "test")
    monkeypatch.setenv("ONEAUTH_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ONEAUTH_EMAIL_BACKEND", "console")
    main(["worker", "--once"])
    assert "sent " in capsys.readouterr().out


async def test_sweep_visits_only_apps_whose_outbox_changed(
    services: Services,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
) -> None:
    worker = services.delivery
    assert worker is not None
    quiet, busy = provision(), provision()
    # Provisioning recorded that a new app has no mail: no sweep enters it.
    for _ in range(2):
        visited = await worker.sweep()
        assert quiet.app_id not in visited
        assert busy.app_id not in visited
    # Mail queued while no worker listens (nothing consumes the NOTIFY here):
    # the outbox's change counter moves once the writer flushes its statistics
    # (about a second), and the next sweep visits that app, and only it.
    addr = unique_email()
    assert (await signup(client, busy, addr)).status_code == 201
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        visited = await worker.sweep()
        assert quiet.app_id not in visited
        if mailbox.to(addr) or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert len(mailbox.to(addr)) == 1
    assert busy.app_id in visited


async def test_a_new_worker_starts_from_what_earlier_sweeps_learned(
    services: Services,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    settings: Settings,
    pg_admin_dsn: str,
) -> None:
    worker = services.delivery
    assert worker is not None
    quiet, busy = provision(), provision()
    await worker.sweep()
    # A worker of a new process (a deploy): it does not enter apps whose outbox
    # has not moved since a recorded visit, but does enter the one that has.
    addr = unique_email()
    assert (await signup(client, busy, addr)).status_code == 201
    fresh = dataclasses.replace(worker)
    # Until the statistics writer flushes (about a second; longer on a loaded
    # machine with many apps): a deadline, not a count of sweeps.
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        visited = await fresh.sweep()
        assert quiet.app_id not in visited
        if mailbox.to(addr) or asyncio.get_running_loop().time() > deadline:
            break
        fresh = dataclasses.replace(worker)
        await asyncio.sleep(0.2)
    assert len(mailbox.to(addr)) == 1
    # After a statistics reset the saved counters are from another epoch:
    # a new worker visits every app once.
    database = conninfo_to_dict(settings.database_url)["dbname"]
    with psycopg.connect(make_conninfo(pg_admin_dsn, dbname=database), autocommit=True) as admin:
        admin.execute("SELECT pg_stat_reset()")
    fresh = dataclasses.replace(worker)
    assert {quiet.app_id, busy.app_id} <= set(await fresh.sweep())
