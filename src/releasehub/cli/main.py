"""The `releasehub` command.

`releasehub analyze|compare|paper` are client commands that people run many times in a row,
so they start without importing the server side (database, access, accounts): `main` builds
an app of just those commands for them, and one of `push` alone for `releasehub push`. Every other invocation, and `app` for tests, is the whole CLI.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
import typer.main

HELP = "releasehub: a self-hosted model release server that speaks the Hugging Face Hub API."
CLIENT_COMMANDS = ("analyze", "compare", "paper")


def _typer() -> typer.Typer:
    return typer.Typer(help=HELP, no_args_is_help=True, pretty_exceptions_enable=False)


def _add_client_commands(target: typer.Typer) -> None:
    from releasehub.cli.analysis import analyze, compare, paper

    target.command("analyze")(analyze)
    target.command("compare")(compare)
    target.command("paper")(paper)


def build_app() -> typer.Typer:
    from releasehub.cli.access import access_app, policy_app
    from releasehub.cli.accounts import orgs_app, tokens_app, users_app
    from releasehub.cli.auditlog import audit_app
    from releasehub.cli.gateway import hosted_app, keys_app, usage
    from releasehub.cli.login import register as register_login
    from releasehub.cli.push import push
    from releasehub.cli.serve import db_app, demo, serve
    from releasehub.cli.storage import gc
    from releasehub.cli.webhooks import webhooks_app

    full = _typer()
    full.command("serve")(serve)
    full.command("demo")(demo)
    full.command("push")(push)
    full.command("usage")(usage)
    full.command("gc")(gc)
    _add_client_commands(full)
    register_login(full)  # login, logout, whoami
    full.add_typer(db_app, name="db")
    full.add_typer(users_app, name="users")
    full.add_typer(orgs_app, name="orgs")
    full.add_typer(tokens_app, name="tokens")
    full.add_typer(access_app, name="access")
    full.add_typer(policy_app, name="policy")
    full.add_typer(webhooks_app, name="webhooks")
    full.add_typer(audit_app, name="audit")
    full.add_typer(hosted_app, name="hosted")
    full.add_typer(keys_app, name="keys")
    return full


_app: typer.Typer | None = None


def __getattr__(name: str) -> typer.Typer:
    # `from releasehub.cli.main import app`: the whole CLI, built on first use.
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = build_app()
    return _app


def _tidy_help(command: Any) -> None:
    """Flags take no value: their help shows `--json`, not `--json <bool>` (typer names every type)."""
    for param in command.params:
        if getattr(param, "is_flag", False):  # typer's options are not click.Option either
            param.metavar = ""
    make_help_option = command.get_help_option  # `--help` is made per call: tidy it as it is made

    def help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in (getattr(command, "commands", None) or {}).values():  # typer's groups are not click.Group
        _tidy_help(sub)


def _run(app: typer.Typer) -> None:
    command = typer.main.get_command(app)
    _tidy_help(command)
    command(prog_name="releasehub")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "push":  # `push` of a large file is timed whole (bench/upload.py)
        from releasehub.cli.push import push

        pushing = _typer()
        pushing.callback()(lambda: None)  # a group, so that `push` stays the subcommand's name
        pushing.command("push")(push)
        _run(pushing)
        return
    if len(sys.argv) > 1 and sys.argv[1] in CLIENT_COMMANDS:
        client = _typer()
        _add_client_commands(client)
        _run(client)
        return
    _run(__getattr__("app"))
