"""``oneauth completion bash|zsh|tcsh``: a shell completion script (shtab).

Generated from the same argparse tree as ``oneauth --help``, so every command,
subcommand and option completes, new ones included, without a hand-kept list.
"""

from __future__ import annotations

import argparse

import shtab

SHELLS = ("bash", "zsh", "tcsh")
INSTALL_HINT = (
    "bash: oneauth completion bash > ~/.local/share/bash-completion/completions/oneauth; "
    'zsh: oneauth completion zsh > "${fpath[1]}/_oneauth"; '
    "tcsh: oneauth completion tcsh > ~/.oneauth.completion.csh and `source` it"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, tcsh)",
        description="Print the completion script of `oneauth` for a shell. " + INSTALL_HINT + ".",
    )
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(func=cmd_completion)


def cmd_completion(args: argparse.Namespace) -> None:
    from oneauth.cli.main import build_parser

    print(shtab.complete(build_parser(), shell=args.shell))
