"""The only reader of ``ONEAUTH_*`` environment variables.

Settings are typed, frozen and validated once at start-up; a bad value stops the
process with a message naming the variable. Development defaults are obviously
fake and refused when ``ONEAUTH_ENV=production``.
"""

from __future__ import annotations

import base64
import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

Env = Literal["development", "test", "production"]
LogFormat = Literal["auto", "json", "console"]
EMAIL_BACKENDS = ("auto", "smtp", "console", "memory")
SMTP_TLS_MODES = ("starttls", "tls", "none")
EMAIL_WORKER_MODES = ("auto", "inprocess", "off")

# Obviously fake; refused in production. Decodes to 32 bytes of a readable phrase.
DEV_MASTER_KEY = base64.urlsafe_b64encode(b"oneauth-dev-master-key--NOT-SAFE").decode()
DEV_DATABASE_URL = "postgresql://oneauth:oneauth-dev-password@127.0.0.1:5432/oneauth"
DEV_PUBLIC_URL = "http://127.0.0.1:8000"


# ONEAUTH_* variables that are read but are not settings of the service (none
# today). Every other ONEAUTH_* name must be a field of Settings: a typo such as
# ONEAUTH_PROT stops start-up instead of silently leaving the default in place.
ALSO_READ: frozenset[str] = frozenset()


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    env: Env = "development"
    database_url: str = DEV_DATABASE_URL
    # The CLI's provisioning and migrations run as the operator role (D1); "":
    # database_url (a single-role database, or a command that needs no more).
    operator_database_url: str = ""
    # In development, unset: http://{host}:{port}, so links follow ONEAUTH_PORT.
    public_url: str = DEV_PUBLIC_URL
    master_key: str = DEV_MASTER_KEY
    pool_min_size: int = 2
    pool_max_size: int = 10
    # App connections are split into shards; an app always starts on its home
    # shard (0: one shard per connection, pool_max_size shards).
    pool_shards: int = 0
    # Each pooled connection caches catalog entries (~100-370 KB) for every schema
    # it touches and never frees them; after this many distinct apps it is replaced.
    pool_max_apps_per_connection: int = 256
    pool_max_queries: int = 50_000
    # asyncpg's prepared-statement cache per connection. Apps that use a connection
    # often get statements of their own there, which keep their plans (oneauth.db.
    # pool.plan_tag) while the cache has room, so its size also bounds the plans a
    # backend keeps (~40-183 KiB each, measured). 0 turns it off: needed through PgBouncer
    # < 1.21 in transaction mode, where a named statement prepared on one server
    # connection is missing on the next (docs/scaling.md: the measured cost, and
    # max_prepared_statements for 1.21+).
    database_statement_cache_size: int = 2000
    # Seconds a request waits for a database connection (every connection busy,
    # or Postgres not answering a connect) before it is refused with 503 and
    # Retry-After; also asyncpg's connect timeout.
    pool_acquire_timeout: float = 5.0
    # A registry lookup is kept this long; a change anywhere drops it at once by its
    # notice, and a listener that stops hearing notices (down, or silent: see
    # oneauth.db.notify's heartbeat) flushes every cache at once and every
    # listen_fallback_ttl until it hears again, so this is only the last resort.
    # At 5 s, 1,000 active apps cost a registry query per 3 requests (measured).
    registry_cache_ttl: float = 300.0
    # LISTEN/NOTIFY (cache invalidation, worker wake-ups) needs a session of its
    # own, which a transaction-mode pooler does not give: this URL is a direct
    # connection to Postgres for the one LISTEN connection per process ("":
    # database_url). Without a usable one (listen off, or the connection or its
    # self-test fails) every cache is flushed each listen_fallback_ttl seconds; the
    # listening connection is proven again every listen_fallback_ttl seconds by a
    # notice it sends itself (lost within 3 s: flushed and reconnected).
    listen_database_url: str = ""
    listen: bool = True
    listen_fallback_ttl: float = 5.0
    # argon2 threads per process (0: the cores divided by the server's worker
    # processes, so N workers do not run N x cores hashes at once)
    password_hash_threads: int = 0
    migrate_parallelism: int = 4
    log_format: LogFormat = "auto"  # console on a terminal, JSON lines otherwise
    log_level: str = "info"
    host: str = "127.0.0.1"
    port: int = 8000
    # Peers (addresses or CIDRs) whose X-Forwarded-For / Forwarded headers are
    # believed; empty: the TCP peer is the client (http/middleware.py).
    trusted_proxies: tuple[str, ...] = ()
    # TCP port of the embedded development Postgres under .data/ (0: a free port
    # picked when the cluster is created, then remembered in .data/pg).
    dev_db_port: int = 0
    # Email (issue 5). "auto": console in development, memory in test, smtp in production.
    email_backend: str = "auto"
    email_from: str = ""  # "": no-reply@<host of public_url>; apps may override per app
    # "auto": the delivery worker runs inside the service, except in tests
    # (they drive it); "off" when `oneauth worker` runs it apart.
    email_worker: str = "auto"
    email_max_attempts: int = 8
    # Run the platform API's job runner (`oneauth platform worker`) inside the
    # service, with the operator URL; `make run` turns it on. Off: run it apart.
    platform_worker: bool = False
    email_sweep_interval: float = 30.0
    email_templates_dir: str = ""
    # The audit chain's sealer (A2): like email_worker, "auto" runs it inside the
    # service except in tests; "off" when `oneauth worker` runs it apart.
    audit_sealer: str = "auto"
    audit_seal_interval: float = 5.0
    # A signed checkpoint of each app's chain head at least this often while it grows.
    audit_checkpoint_interval: float = 3600.0
    # Retention (oneauth.retention): like email_worker, "auto" runs the worker inside
    # the service except in tests; "off" when `oneauth retention run` runs it apart.
    retention: str = "auto"
    retention_interval: float = 300.0  # seconds between two cycles
    retention_batch_size: int = 1000  # rows per DELETE (10 batches per table and app per visit)
    retention_history_days: int = 7  # sent/dead mail and finished webhook deliveries kept
    smtp_host: str = "localhost"
    smtp_port: int = 0  # 0: 587 for starttls, 465 for tls, 25 for none
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_tls: str = "starttls"
    smtp_timeout: float = 10.0
    # GET /metrics (Prometheus text format; counts only, no per-app or per-user data).
    metrics: bool = True
    # Where `oneauth serve --workers N` (N > 1) keeps the workers' metric files; emptied at
    # start. "": a fresh temporary directory per run, removed at exit.
    metrics_dir: str = ""
    # OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces); "": tracing off.
    # Needs the [tracing] extra. OTEL_EXPORTER_OTLP_ENDPOINT is honoured too.
    otlp_endpoint: str = ""

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def listen_url(self) -> str:
        """Where the process's LISTEN connection goes: a direct URL, else database_url."""
        return self.listen_database_url or self.database_url

    @property
    def operator_url(self) -> str:
        """The URL of provisioning and migrations: the operator role's, else database_url."""
        return self.operator_database_url or self.database_url

    def public_url_mismatch(self) -> str | None:
        """Why links would point at another port than the one served, on loopback (item 9).

        A browser on the machine follows the public URL: if it names a loopback
        host on another port, every link, form and issuer leads elsewhere.
        """
        parts = urlsplit(self.public_url)
        if not _is_loopback(parts.hostname or ""):
            return None
        public_port = parts.port or (443 if parts.scheme == "https" else 80)
        if public_port == self.port:
            return None
        return (
            f"ONEAUTH_PUBLIC_URL {self.public_url} names port {public_port} on loopback, "
            f"but the service listens on port {self.port}: links, forms and issuers will "
            "point elsewhere; set ONEAUTH_PUBLIC_URL or unset it in development"
        )

    def to_environ(self) -> dict[str, str]:
        """These settings as ONEAUTH_* variables: Settings.from_env reads them back as equal.

        For processes that rebuild settings from their environment (uvicorn's
        workers), so they see what this process resolved (e.g. the embedded
        database's URL), not the bare environment.
        """
        # A default stays unset (0 is "automatic", not a port); the public URL is
        # always written, as in development its default depends on host and port.
        return {
            f"ONEAUTH_{f.name.upper()}": _environ_value(getattr(self, f.name))
            for f in fields(self)
            if f.name == "public_url" or getattr(self, f.name) != f.default
        }

    @property
    def mail_backend(self) -> str:
        if self.email_backend != "auto":
            return self.email_backend
        return {"development": "console", "test": "memory"}.get(self.env, "smtp")

    @property
    def mail_worker_inprocess(self) -> bool:
        if self.email_worker == "auto":
            return self.env != "test"
        return self.email_worker == "inprocess"

    @property
    def audit_sealer_inprocess(self) -> bool:
        if self.audit_sealer == "auto":
            return self.env != "test"
        return self.audit_sealer == "inprocess"

    @property
    def retention_inprocess(self) -> bool:
        if self.retention == "auto":
            return self.env != "test"
        return self.retention == "inprocess"

    @property
    def mail_from(self) -> str:
        if self.email_from:
            return self.email_from
        host = urlsplit(self.public_url).hostname or ""
        if "." not in host or host.replace(".", "").isdigit():
            host = "oneauth.invalid"  # loopback/IP development URL: obviously fake
        return f"no-reply@{host}"

    @property
    def smtp_effective_port(self) -> int:
        return self.smtp_port or {"starttls": 587, "tls": 465}.get(self.smtp_tls, 25)

    def issuer_for(self, app_id: str) -> str:
        return issuer_url(self.public_url, app_id)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate settings; raise SettingsError naming the bad variable."""
        env = os.environ if environ is None else environ
        check_known_variables(env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = f"ONEAUTH_{f.name.upper()}"
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            parse = _PARSERS.get(f.name, _str)
            try:
                values[f.name] = parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{var}: {exc}") from None
        if "public_url" not in values and values.get("env", "development") == "development":
            defaults = {f.name: f.default for f in fields(cls)}
            values["public_url"] = derived_public_url(
                values.get("host", defaults["host"]), values.get("port", defaults["port"])
            )
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.env not in ("development", "test", "production"):
            raise SettingsError("ONEAUTH_ENV: must be development, test or production")
        if self.log_format not in ("auto", "json", "console"):
            raise SettingsError("ONEAUTH_LOG_FORMAT: must be auto, json or console")
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(f"ONEAUTH_LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)}")
        _check_url("ONEAUTH_DATABASE_URL", self.database_url, ("postgres", "postgresql"))
        if self.operator_database_url:
            _check_url(
                "ONEAUTH_OPERATOR_DATABASE_URL",
                self.operator_database_url,
                ("postgres", "postgresql"),
            )
        if self.listen_database_url:
            _check_url(
                "ONEAUTH_LISTEN_DATABASE_URL", self.listen_database_url, ("postgres", "postgresql")
            )
        if not 0.5 <= self.listen_fallback_ttl <= 300:
            raise SettingsError("ONEAUTH_LISTEN_FALLBACK_TTL: must be from 0.5 to 300 seconds")
        if not 0 <= self.database_statement_cache_size <= 10_000:
            raise SettingsError(
                "ONEAUTH_DATABASE_STATEMENT_CACHE_SIZE: must be from 0 (off) to 10000"
            )
        if self.dev_db_port and not 0 < self.dev_db_port < 65536:
            raise SettingsError("ONEAUTH_DEV_DB_PORT: expected a TCP port")
        _check_url("ONEAUTH_PUBLIC_URL", self.public_url, ("http", "https"))
        if self.public_url.endswith("/"):
            raise SettingsError("ONEAUTH_PUBLIC_URL: must not end with '/'")
        if urlsplit(self.public_url).query or urlsplit(self.public_url).fragment:
            raise SettingsError("ONEAUTH_PUBLIC_URL: must not carry a query or fragment")
        if not 1 <= self.pool_min_size <= self.pool_max_size:
            raise SettingsError("ONEAUTH_POOL_MIN_SIZE: must be >= 1 and <= ONEAUTH_POOL_MAX_SIZE")
        if not 0 <= self.pool_shards <= self.pool_max_size:
            raise SettingsError(
                "ONEAUTH_POOL_SHARDS: must be >= 0 (0: automatic) and <= ONEAUTH_POOL_MAX_SIZE"
            )
        if not self.pool_acquire_timeout > 0:
            raise SettingsError("ONEAUTH_POOL_ACQUIRE_TIMEOUT: must be > 0 (seconds)")
        if self.pool_max_apps_per_connection < 1:
            raise SettingsError("ONEAUTH_POOL_MAX_APPS_PER_CONNECTION: must be >= 1")
        if self.password_hash_threads < 0:
            raise SettingsError("ONEAUTH_PASSWORD_HASH_THREADS: must be >= 0 (0: automatic)")
        if self.migrate_parallelism < 1:
            raise SettingsError("ONEAUTH_MIGRATE_PARALLELISM: must be >= 1")
        _check_master_key(self.master_key)
        if self.otlp_endpoint:
            _check_url("ONEAUTH_OTLP_ENDPOINT", self.otlp_endpoint, ("http", "https"))
        if self.is_production:
            if self.master_key == DEV_MASTER_KEY:
                raise SettingsError(
                    "ONEAUTH_MASTER_KEY: the development key is refused in production; "
                    "generate one with `oneauth keys new-master-key`"
                )
            if "oneauth-dev-password" in self.database_url:
                raise SettingsError(
                    "ONEAUTH_DATABASE_URL: the development password is refused in production"
                )
            if urlsplit(self.public_url).scheme != "https":
                raise SettingsError("ONEAUTH_PUBLIC_URL: must be https in production")
        self._validate_email()

    def _validate_email(self) -> None:
        if self.email_backend not in EMAIL_BACKENDS:
            raise SettingsError("ONEAUTH_EMAIL_BACKEND: must be smtp, console, memory or auto")
        if self.email_worker not in EMAIL_WORKER_MODES:
            raise SettingsError("ONEAUTH_EMAIL_WORKER: must be inprocess, off or auto")
        if self.smtp_tls not in SMTP_TLS_MODES:
            raise SettingsError("ONEAUTH_SMTP_TLS: must be starttls, tls or none")
        if self.email_from and not _EMAIL_ADDRESS.fullmatch(self.email_from):
            raise SettingsError("ONEAUTH_EMAIL_FROM: expected an address like no-reply@example.com")
        if not 1 <= self.email_max_attempts <= 100:
            raise SettingsError("ONEAUTH_EMAIL_MAX_ATTEMPTS: must be from 1 to 100")
        if not 1.0 <= self.email_sweep_interval <= 3600:
            raise SettingsError("ONEAUTH_EMAIL_SWEEP_INTERVAL: must be from 1 to 3600 seconds")
        if self.audit_sealer not in EMAIL_WORKER_MODES:
            raise SettingsError("ONEAUTH_AUDIT_SEALER: must be inprocess, off or auto")
        if not 0.1 <= self.audit_seal_interval <= 3600:
            raise SettingsError("ONEAUTH_AUDIT_SEAL_INTERVAL: must be from 0.1 to 3600 seconds")
        if not 10 <= self.audit_checkpoint_interval <= 86400:
            raise SettingsError(
                "ONEAUTH_AUDIT_CHECKPOINT_INTERVAL: must be from 10 to 86400 seconds"
            )
        if self.retention not in EMAIL_WORKER_MODES:
            raise SettingsError("ONEAUTH_RETENTION: must be inprocess, off or auto")
        if not 1.0 <= self.retention_interval <= 86400:
            raise SettingsError("ONEAUTH_RETENTION_INTERVAL: must be from 1 to 86400 seconds")
        if not 1 <= self.retention_batch_size <= 100_000:
            raise SettingsError("ONEAUTH_RETENTION_BATCH_SIZE: must be from 1 to 100000")
        if not 1 <= self.retention_history_days <= 3650:
            raise SettingsError("ONEAUTH_RETENTION_HISTORY_DAYS: must be from 1 to 3650")
        if not 0.5 <= self.smtp_timeout <= 300:
            raise SettingsError("ONEAUTH_SMTP_TIMEOUT: must be from 0.5 to 300 seconds")
        if not self.smtp_host or any(ch in self.smtp_host for ch in " /@"):
            raise SettingsError("ONEAUTH_SMTP_HOST: expected a host name or address")
        if bool(self.smtp_username) != bool(self.smtp_password):
            raise SettingsError("ONEAUTH_SMTP_USERNAME and ONEAUTH_SMTP_PASSWORD go together")
        if self.smtp_username and self.smtp_tls == "none" and self.smtp_host not in _LOOPBACK:
            raise SettingsError("ONEAUTH_SMTP_TLS: none would send the SMTP password in clear")
        if self.is_production:
            if self.mail_backend != "smtp":
                # console prints live links into logs; memory drops every message.
                raise SettingsError("ONEAUTH_EMAIL_BACKEND: must be smtp in production")
            if self.smtp_tls == "none" and self.smtp_host not in _LOOPBACK:
                raise SettingsError(
                    "ONEAUTH_SMTP_TLS: none is allowed in production only for a loopback relay"
                )


def known_variables() -> frozenset[str]:
    """Every ONEAUTH_* name the service reads: derived from the one declaration above."""
    return frozenset(f"ONEAUTH_{f.name.upper()}" for f in fields(Settings)) | ALSO_READ


def check_known_variables(env: Mapping[str, str]) -> None:
    """Refuse unknown ONEAUTH_* variables, naming the closest known one."""
    known = known_variables()
    for var in sorted(env):
        if var.startswith("ONEAUTH_") and var not in known:
            # Compare what follows the shared prefix, which would make every name look close.
            suffixes = {name.removeprefix("ONEAUTH_"): name for name in known}
            close = difflib.get_close_matches(
                var.removeprefix("ONEAUTH_"), sorted(suffixes), 1, 0.6
            )
            hint = f"; did you mean {suffixes[close[0]]}?" if close else ""
            raise SettingsError(f"{var}: unknown variable{hint} (see README, Configuration)")


T = TypeVar("T")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_EMAIL_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}")
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def issuer_url(public_url: str, app_id: str) -> str:
    """An app's issuer. The control-plane app (``platform``, oneauth.platform) has
    its own mount at /platform; every other app lives under /apps/."""
    if app_id == "platform":
        return f"{public_url}/platform"
    return f"{public_url}/apps/{app_id}"


def derived_public_url(host: str, port: int) -> str:
    """http://host:port as a browser on this machine reaches it (development)."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _str(raw: str) -> str:
    return raw.strip()


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"expected an integer, got {raw!r}") from None


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"expected on or off, got {raw!r}")


def _float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None


def _port(raw: str) -> int:
    port = _int(raw)
    if not 0 < port < 65536:
        raise ValueError(f"expected a TCP port, got {raw!r}")
    return port


def _proxies(raw: str) -> tuple[str, ...]:
    """Comma-separated IPv4/IPv6 addresses or CIDRs, normalized (``10.0.0.0/8``)."""
    networks = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"expected addresses or CIDRs, not {item!r}") from None
    return tuple(networks)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "pool_min_size": _int,
    "pool_max_size": _int,
    "pool_shards": _int,
    "pool_max_apps_per_connection": _int,
    "pool_max_queries": _int,
    "database_statement_cache_size": _int,
    "listen": _bool,
    "listen_fallback_ttl": _float,
    "migrate_parallelism": _int,
    "password_hash_threads": _int,
    "registry_cache_ttl": _float,
    "pool_acquire_timeout": _float,
    "port": _port,
    "dev_db_port": _port,
    "email_max_attempts": _int,
    "email_sweep_interval": _float,
    "smtp_port": _port,
    "smtp_timeout": _float,
    "email_backend": lambda raw: raw.strip().lower(),
    "email_worker": lambda raw: raw.strip().lower(),
    "audit_sealer": lambda raw: raw.strip().lower(),
    "audit_seal_interval": _float,
    "audit_checkpoint_interval": _float,
    "retention": lambda raw: raw.strip().lower(),
    "retention_interval": _float,
    "retention_batch_size": _int,
    "retention_history_days": _int,
    "smtp_tls": lambda raw: raw.strip().lower(),
    "public_url": lambda raw: raw.strip().rstrip("/"),
    "log_format": lambda raw: raw.strip().lower(),
    "log_level": lambda raw: raw.strip().lower(),
    "env": lambda raw: raw.strip().lower(),
    "trusted_proxies": _proxies,
    "metrics": _bool,
    "platform_worker": _bool,
}


def _environ_value(value: object) -> str:
    """How ``from_env`` reads a value back: lists are comma-separated."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _check_url(var: str, value: str, schemes: tuple[str, ...]) -> None:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.hostname or parts.path or parts.query):
        raise SettingsError(f"{var}: expected a {schemes[0]}:// URL")


def _check_master_key(value: str) -> None:
    from oneauth.secretbox import SecretBox  # the one parser of the key format

    try:
        SecretBox.from_config(value)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
