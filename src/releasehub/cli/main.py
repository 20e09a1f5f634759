"""The `releasehub` command."""

from __future__ import annotations

import typer

from releasehub.cli.access import access_app, policy_app
from releasehub.cli.analysis import analyze, compare, paper
from releasehub.cli.accounts import orgs_app, tokens_app, users_app
from releasehub.cli.auditlog import audit_app
from releasehub.cli.push import push
from releasehub.cli.serve import db_app, demo, serve
from releasehub.cli.webhooks import webhooks_app

app = typer.Typer(
    help="releasehub: a self-hosted model release server that speaks the Hugging Face Hub API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve)
app.command("demo")(demo)
app.command("push")(push)
app.command("analyze")(analyze)
app.command("compare")(compare)
app.command("paper")(paper)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(orgs_app, name="orgs")
app.add_typer(tokens_app, name="tokens")
app.add_typer(access_app, name="access")
app.add_typer(policy_app, name="policy")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(audit_app, name="audit")


def main() -> None:
    app()
