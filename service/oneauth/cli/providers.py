"""``oneauth providers``: an app's upstream identity providers (issue 14).

The client secret (or signing key) is read from a file or stdin
(``--client-secret-file -``), never from an argument (arguments show in ``ps``
and shell history), sealed at rest, and never printed. ``create`` prints the
provider id and the exact callback URL to register at the upstream. Every
change is audited in the app's log (actor ``operator``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from oneauth.apps.dek import KeyRing
from oneauth.cli.appctx import app_transaction
from oneauth.cli.common import fail, print_json
from oneauth.federation import providers

SECRET_HELP = "file holding the client secret (or the private key), '-' for stdin"


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.replace(" ", ",").split(",") if part.strip()]


def _no_secret_argument(args: argparse.Namespace) -> None:
    if args.secret_argument is not None:
        fail(
            "the secret is never an argument (it would show in ps and shell history):"
            " use --client-secret-file F, or - for stdin"
        )


def _read_secret(path: str) -> str:
    try:
        if path == "-":
            value = sys.stdin.read(providers.MAX_SECRET + 1)
        else:
            with open(path, encoding="utf-8") as f:
                value = f.read(providers.MAX_SECRET + 1)
    except (OSError, UnicodeDecodeError) as exc:
        # Neither the content nor the path is echoed: a secret pasted where the
        # path belongs must not land in a terminal log.
        fail(f"cannot read the client secret file ({type(exc).__name__})")
    return value


def _mapping(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        fail("--claim-mapping must be a JSON object")
    if not isinstance(parsed, dict):
        fail("--claim-mapping must be a JSON object")
    return parsed


def _common(p: argparse.ArgumentParser, *, create: bool) -> None:
    p.add_argument("--name", required=create, help="display name (the button says it)")
    p.add_argument("--issuer", help="the upstream issuer URL (github: the web base URL)")
    p.add_argument("--client-id", required=create, help="this app's client id upstream")
    p.add_argument("--client-secret-file", required=create, metavar="F", help=SECRET_HELP)
    # Caught to say why it is refused without echoing it (argparse would print
    # an unrecognized value back).
    p.add_argument("--client-secret", dest="secret_argument", help=argparse.SUPPRESS)
    p.add_argument("--scopes", type=_csv, help="space or comma separated (default per kind)")
    p.add_argument("--button-label", help='default "Continue with <name>"')
    p.add_argument("--auth-method", choices=providers.AUTH_METHODS)
    p.add_argument("--team-id", help="apple: the team id (signs the client secret)")
    p.add_argument("--key-id", help="apple / private_key_jwt: the signing key's id")
    p.add_argument("--claim-mapping", help='JSON, e.g. {"email": "mail"}')
    p.add_argument("--linking", choices=("confirm", "never"), help="an existing local account")
    flags = (
        ("jit-signup", "create a local user on a first sign-in"),
        ("trust-email-verified", "believe the upstream's email_verified"),
        ("trust-amr", "let the upstream's amr count toward MFA"),
        ("keep-tokens", "keep the upstream's tokens (sealed)"),
        ("enabled", "offer the provider"),
    )
    for flag, help_text in flags:
        dest = flag.replace("-", "_")
        p.add_argument(f"--{flag}", dest=dest, action="store_true", default=None, help=help_text)
        p.add_argument(f"--no-{flag}", dest=dest, action="store_false")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "providers",
        help="upstream identity providers of an app",
        description="Configure an app's upstream OpenID Connect / OAuth 2.0 providers.",
    )
    cmds = group.add_subparsers(dest="providers_command", required=True, metavar="COMMAND")

    p = cmds.add_parser(
        "create",
        # No abbreviations: "--client-secret VALUE" must not pass for
        # "--client-secret-file" (and then echo VALUE as a missing file).
        allow_abbrev=False,
        help="add a provider; prints its id and the callback URL to register upstream",
        description="Add a provider. The secret is read from --client-secret-file (or stdin "
        "with '-'), sealed at rest and never printed.",
    )
    p.add_argument("--app", required=True)
    p.add_argument("--kind", required=True, choices=providers.KINDS)
    _common(p, create=True)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_create)

    p = cmds.add_parser("list", help="list providers", description="List an app's providers.")
    p.add_argument("--app", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser("show", help="show one provider", description="Show one provider.")
    p.add_argument("provider_id")
    p.add_argument("--app", required=True)
    p.add_argument("--json", action="store_true", help="(always JSON)")
    p.set_defaults(func=cmd_show)

    p = cmds.add_parser(
        "update",
        allow_abbrev=False,
        help="change a provider",
        description="Change a provider; --client-secret-file replaces the secret.",
    )
    p.add_argument("provider_id")
    p.add_argument("--app", required=True)
    _common(p, create=False)
    p.add_argument("--json", action="store_true", help="(always JSON)")
    p.set_defaults(func=cmd_update)

    p = cmds.add_parser(
        "delete",
        help="delete a provider and the identities linked through it",
        description="Delete a provider; users linked through it keep their other ways in.",
    )
    p.add_argument("provider_id")
    p.add_argument("--app", required=True)
    p.add_argument("--yes", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_delete)


def _auth_params(args: argparse.Namespace) -> dict[str, Any] | None:
    params = {
        key: value
        for key, value in (("team_id", args.team_id), ("key_id", args.key_id))
        if value is not None
    }
    return params or None


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    values = {
        "name": args.name,
        "issuer": args.issuer,
        "client_id": args.client_id,
        "scopes": tuple(args.scopes) if args.scopes is not None else None,
        "button_label": args.button_label,
        "auth_method": args.auth_method,
        "auth_params": _auth_params(args),
        "claim_mapping": _mapping(args.claim_mapping),
        "linking": args.linking,
        "jit_signup": args.jit_signup,
        "trust_email_verified": args.trust_email_verified,
        "trust_amr": args.trust_amr,
        "keep_tokens": args.keep_tokens,
        "enabled": args.enabled,
    }
    return {key: value for key, value in values.items() if value is not None}


def cmd_create(args: argparse.Namespace) -> None:
    _no_secret_argument(args)
    secret = _read_secret(args.client_secret_file)
    changes = _changes(args)
    spec = providers.ProviderSpec(kind=args.kind, **changes)
    with app_transaction(args.app) as (conn, app, settings):
        box = KeyRing.with_apps(settings.master_key, app)
        try:
            provider = providers.create(
                conn, box, app.app_id, spec, secret, allow_http=not settings.is_production
            )
        except providers.ProviderError as exc:
            fail(str(exc))
        issuer = settings.issuer_for(app.app_id)
    callback = providers.callback_url(issuer, provider.id)
    if args.json:
        print_json(provider.public(issuer))
        return
    print(f"provider_id:  {provider.id}")
    print(f"callback_url: {callback}")
    print("(register this exact redirect URI at the upstream)")


def cmd_list(args: argparse.Namespace) -> None:
    with app_transaction(args.app) as (conn, app, settings):
        found = providers.list_all(conn)
        issuer = settings.issuer_for(app.app_id)
    if args.json:
        print_json([p.public(issuer) for p in found])
        return
    for p in found:
        state = "enabled" if p.enabled else "disabled"
        print(f"{p.id:<28} {p.kind:<10} {state:<9} {p.name}  {p.issuer}")


def cmd_show(args: argparse.Namespace) -> None:
    with app_transaction(args.app) as (conn, app, settings):
        provider = providers.get(conn, args.provider_id)
        issuer = settings.issuer_for(app.app_id)
    if provider is None:
        fail(f"no provider {args.provider_id!r} in app {args.app!r}")
    print_json(provider.public(issuer))


def cmd_update(args: argparse.Namespace) -> None:
    _no_secret_argument(args)
    secret = _read_secret(args.client_secret_file) if args.client_secret_file else None
    changes = _changes(args)
    with app_transaction(args.app) as (conn, app, settings):
        box = KeyRing.with_apps(settings.master_key, app)
        try:
            provider = providers.update(
                conn,
                box,
                app.app_id,
                args.provider_id,
                secret=secret,
                allow_http=not settings.is_production,
                **changes,
            )
        except providers.ProviderError as exc:
            fail(str(exc))
        issuer = settings.issuer_for(app.app_id)
    print_json(provider.public(issuer))


def cmd_delete(args: argparse.Namespace) -> None:
    if not args.yes:
        fail("deleting a provider unlinks every identity of it; pass --yes to confirm")
    with app_transaction(args.app) as (conn, app, _):
        if not providers.delete(conn, app.app_id, args.provider_id):
            fail(f"no provider {args.provider_id!r} in app {args.app!r}")
    if args.json:
        print_json({"id": args.provider_id, "deleted": True})
        return
    print(f"provider {args.provider_id} deleted")
