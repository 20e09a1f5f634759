"""`releasehub hosted ...`, `releasehub keys ...` and `releasehub usage`: the gateway, from the operator's shell.

Like `users` and `tokens`, these work on the server's database directly (`--data-dir`,
`--database-url`), so they take effect on every replica at the next request.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from sqlalchemy import func, select

from releasehub.cli.common import (
    DatabaseUrlOption,
    DataDirOption,
    console,
    database,
    friendly_errors,
    load_settings,
)
from releasehub.gateway import service as gw
from releasehub.gateway.models import ApiKey, UsageDaily
from releasehub.repos.models import Repo

hosted_app = typer.Typer(help="Attach inference engines to repos; switch them off and on.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of the gateway: bound to a user, repos and a tier.", no_args_is_help=True)
OPERATOR = "operator"
ActorOption = typer.Option(OPERATOR, "--actor", help="Who is acting, for the audit log.")


@hosted_app.command("attach")
def hosted_attach(
    repo_id: str = typer.Argument(..., help="NAMESPACE/NAME"),
    backend: str = typer.Option(..., "--backend", help="The engine's OpenAI base URL, e.g. http://127.0.0.1:8001/v1"),
    model: Optional[str] = typer.Option(None, "--model", help="The model name the engine expects "
                                                              "(default: the repo id)."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Environment variable (of the server "
                                                                          "process) holding the engine's API key."),
    hosted_only: bool = typer.Option(False, "--hosted-only", help="Weight files never leave the server, whatever "
                                                                  "else the policy says."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for the engine."),
    actor: str = ActorOption,
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Serve REPO through /v1 with an OpenAI-compatible engine (vLLM, llama.cpp, TGI, SGLang, Ollama)."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        repo = gw.load_repo(session, repo_id)
        hosted = gw.attach(session, repo, backend_url=backend, engine_model=model, api_key_env=api_key_env,
                           hosted_only=hosted_only, actor=actor, timeout_s=timeout)
        console.print(f"{repo_id} is served through /v1 by {hosted.backend_url} (engine model "
                      f"{hosted.engine_model!r}){'; its weights are hosted-only' if hosted_only else ''}.")


def _switch(repo_id: str, enabled: bool, reason: Optional[str], actor: str, data_dir: Optional[Path],
            database_url: Optional[str]) -> None:
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        gw.set_enabled(session, gw.load_repo(session, repo_id), enabled, actor=actor, reason=reason)
    console.print(f"{repo_id}: API {'on' if enabled else 'off, from the next request on every replica'}.")


@hosted_app.command("disable")
def hosted_disable(
    repo_id: str = typer.Argument(..., help="NAMESPACE/NAME"),
    reason: Optional[str] = typer.Option(None, "--reason", help="Shown to API users in the error."),
    actor: str = ActorOption,
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """The kill switch: refuse every call to REPO (503) until `hosted enable`."""
    _switch(repo_id, False, reason, actor, data_dir, database_url)


@hosted_app.command("enable")
def hosted_enable(
    repo_id: str = typer.Argument(..., help="NAMESPACE/NAME"),
    actor: str = ActorOption,
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Serve REPO again after `hosted disable`."""
    _switch(repo_id, True, None, actor, data_dir, database_url)


@hosted_app.command("hook")
def hosted_hook(
    repo_id: str = typer.Argument(..., help="NAMESPACE/NAME"),
    block: Optional[List[str]] = typer.Option(None, "--block", help="A regular expression to refuse (repeatable; "
                                                                    "replaces the list)."),
    clear_blocklist: bool = typer.Option(False, "--clear-blocklist", help="Remove every pattern."),
    moderation_url: Optional[str] = typer.Option(None, "--moderation-url", help="POSTed {input, model} before each "
                                                                                "call; {flagged: true} (or OpenAI's "
                                                                                "results[0].flagged) refuses it. "
                                                                                "'' removes it."),
    store_prompts: Optional[bool] = typer.Option(None, "--store-prompts/--no-store-prompts",
                                                 help="Keep prompts in the audit log (off by default)."),
    actor: str = ActorOption,
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """The releaser's policy hook: a blocklist and/or a moderation service, checked before forwarding."""
    blocklist = [] if clear_blocklist else (list(block) if block else None)
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        hosted = gw.set_hook(session, gw.load_repo(session, repo_id), blocklist=blocklist,
                             moderation_url=moderation_url, store_prompts=store_prompts, actor=actor)
        console.print(f"{repo_id}: blocklist {hosted.blocklist or []}, moderation {hosted.moderation_url or 'none'}, "
                      f"prompts {'stored' if hosted.store_prompts else 'not stored'}.")


@hosted_app.command("detach")
def hosted_detach(
    repo_id: str = typer.Argument(..., help="NAMESPACE/NAME"),
    actor: str = ActorOption,
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Stop serving REPO through /v1 (keys stay; a hosted-only policy stays until `policy set`)."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        gw.detach(session, gw.load_repo(session, repo_id), actor=actor)
    console.print(f"{repo_id} is no longer served through /v1.")


@keys_app.command("create")
def keys_create(
    user: str = typer.Argument(..., help="The user the key acts for."),
    repo: List[str] = typer.Option(..., "--repo", help="A hosted repo the key may call (repeatable)."),
    tier: str = typer.Option(gw.DEFAULT_TIER, "--tier", help="A tier of the repos' policy; its `api` section "
                                                             "sets the limits."),
    expires_in: Optional[int] = typer.Option(None, "--expires-in", help="Days until the key expires."),
    name: Optional[str] = typer.Option(None, "--name", help="A label."),
    actor: str = ActorOption,
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Create an API key. The secret is printed once, as the last line (the OpenAI client's api_key)."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        new = gw.create_key(session, user, list(repo), tier, actor=actor, expires_in_days=expires_in, name=name)
        expiry = f", expires {new.key.expires_at:%Y-%m-%d}" if new.key.expires_at else ""
        console.print(f"created API key {new.key.key_id} for {user} (tier {tier}; {', '.join(repo)}{expiry}); "
                      "it is shown only once:")
        secret = new.secret
    print(secret)


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="The key id (rhk_...), or the whole secret."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Shown to the key's user."),
    actor: str = ActorOption,
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Revoke a key: refused from the next request, on every replica."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        key = gw.revoke_key(session, key_id, actor=actor, reason=reason)
        console.print(f"revoked {key.key_id}.")


@keys_app.command("list")
def keys_list(
    user: Optional[str] = typer.Option(None, "--user"),
    repo: Optional[str] = typer.Option(None, "--repo"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """List API keys (never their secrets)."""
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        rows = gw.list_keys(session, user=user, repo=gw.load_repo(session, repo) if repo else None)
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    table = Table("key", "user", "tier", "repos", "state", "expires")
    for row in rows:
        table.add_row(row["key"], row["user"] or "?", row["tier"], ", ".join(row["repos"]), row["state"],
                      (row["expires_at"] or "never")[:10])
    console.print(table)


def usage(
    repo: Optional[str] = typer.Option(None, "--repo", help="Only this repo."),
    key: Optional[str] = typer.Option(None, "--key", help="Only this key id."),
    user: Optional[str] = typer.Option(None, "--user", help="Only this user's keys."),
    days: int = typer.Option(30, "--days", help="How many days back, today included."),
    by: str = typer.Option("day", "--by", help="Group by day, key or repo."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
) -> None:
    """Gateway usage: requests, refusals, engine errors and tokens, per day, key or repo."""
    if by not in ("day", "key", "repo"):
        raise typer.BadParameter("--by must be day, key or repo")
    if days <= 0:
        raise typer.BadParameter("--days must be positive")
    from releasehub.accounts.models import User

    group = {"day": UsageDaily.day, "key": ApiKey.key_id, "repo": Repo.namespace.concat("/").concat(Repo.name)}[by]
    with friendly_errors(), database(load_settings(data_dir, database_url)) as db, db.session() as session:
        query = (select(group, func.sum(UsageDaily.requests), func.sum(UsageDaily.refused), func.sum(UsageDaily.errors),
                        func.sum(UsageDaily.prompt_tokens), func.sum(UsageDaily.completion_tokens))
                 .join(ApiKey, ApiKey.id == UsageDaily.key_pk).join(Repo, Repo.id == UsageDaily.repo_id)
                 .where(UsageDaily.day >= datetime.now(timezone.utc).date() - timedelta(days=days - 1))
                 .group_by(group).order_by(group))
        if repo:
            target = gw.load_repo(session, repo)
            query = query.where(UsageDaily.repo_id == target.id)
        if key:
            query = query.where(ApiKey.key_id == key.split(".", 1)[0])
        if user:
            query = query.join(User, User.id == ApiKey.user_id).where(User.name == user)
        rows = [(str(g), int(r or 0), int(f or 0), int(e or 0), int(i or 0), int(o or 0))
                for g, r, f, e, i, o in session.execute(query)]
    if as_json:
        for g, r, f, e, i, o in rows:
            print(json.dumps({by: g, "requests": r, "refused": f, "errors": e, "prompt_tokens": i,
                              "completion_tokens": o}))
        return
    table = Table(by, "requests", "refused", "errors", "tokens in", "tokens out")
    for g, r, f, e, i, o in rows:
        table.add_row(g, f"{r:,}", f"{f:,}", f"{e:,}", f"{i:,}", f"{o:,}")
    console.print(table)
