"""The `releasehub` command."""

from __future__ import annotations

import typer

from releasehub.cli.accounts import orgs_app, tokens_app, users_app
from releasehub.cli.push import push
from releasehub.cli.serve import db_app, demo, serve

app = typer.Typer(
    help="releasehub: a self-hosted model release server that speaks the Hugging Face Hub API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve)
app.command("demo")(demo)
app.command("push")(push)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(orgs_app, name="orgs")
app.add_typer(tokens_app, name="tokens")


def main() -> None:
    app()
