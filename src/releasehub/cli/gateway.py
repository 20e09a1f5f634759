"""`releasehub hosted ...`, `releasehub keys ...` and `releasehub usage`: the gateway, over the HTTP API.

Like every command but `db upgrade` and `audit verify|checkpoint`, they talk to the server
(`--endpoint`/`HF_ENDPOINT`, `--token`/`HF_TOKEN`, or `releasehub login`), so they take effect on
every replica at the next request and the audit log names the token's user as the actor.
Attaching, hooks and detaching are the operator's (a server admin's token: the server connects to
the URL given); the kill switch and keys are the releasing team's (the repo's admin role).
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

import typer
from rich.table import Table
from rich.text import Text

from releasehub.cli.common import console
from releasehub.cli.remote import EndpointOption, TokenOption, check_repo_id, remote
from releasehub.gateway.constants import DEFAULT_TIER

hosted_app = typer.Typer(help="Attach inference engines to repos; switch them off and on.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of the gateway: bound to a user, repos and a tier.", no_args_is_help=True)

RepoArgument = typer.Argument(..., help="NAMESPACE/NAME")


@hosted_app.command("attach")
def hosted_attach(
    repo_id: str = RepoArgument,
    backend: str = typer.Option(..., "--backend", help="The engine's OpenAI base URL, e.g. http://127.0.0.1:8001/v1"),
    model: Optional[str] = typer.Option(None, "--model", help="The model name the engine expects "
                                                              "(default: the repo id)."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Environment variable (of the server "
                                                                          "process) holding the engine's API key."),
    hosted_only: bool = typer.Option(False, "--hosted-only", help="Weight files never leave the server, whatever "
                                                                  "else the policy says."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for the engine."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Serve REPO through /v1 with an OpenAI-compatible engine (vLLM, llama.cpp, TGI, SGLang, Ollama); needs
    a server admin's token."""
    check_repo_id(repo_id)
    with remote(endpoint, token) as api:
        hosted = api.json("POST", f"/api/models/{repo_id}/hosted",
                          json={"backend": backend, "model": model, "apiKeyEnv": api_key_env,
                                "hostedOnly": hosted_only, "timeout": timeout})
    console.print(f"{repo_id} is served through /v1 by {hosted['backend']} (engine model {hosted['model']!r})"
                  f"{'; its weights are hosted-only' if hosted_only else ''}.", markup=False, soft_wrap=True)


def _switch(repo_id: str, enabled: bool, reason: Optional[str], endpoint: Optional[str],
            token: Optional[str]) -> None:
    check_repo_id(repo_id)
    with remote(endpoint, token) as api:
        if enabled:
            api.json("POST", f"/api/models/{repo_id}/hosted/enable")
        else:
            api.json("POST", f"/api/models/{repo_id}/hosted/disable", json={"reason": reason})
    console.print(f"{repo_id}: API {'on' if enabled else 'off, from the next request on every replica'}.",
                  markup=False)


@hosted_app.command("disable")
def hosted_disable(
    repo_id: str = RepoArgument,
    reason: Optional[str] = typer.Option(None, "--reason", help="Shown to API users in the error."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """The kill switch: refuse every call to REPO (503) until `hosted enable`; needs the repo's admin role."""
    _switch(repo_id, False, reason, endpoint, token)


@hosted_app.command("enable")
def hosted_enable(
    repo_id: str = RepoArgument,
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Serve REPO again after `hosted disable`; needs the repo's admin role."""
    _switch(repo_id, True, None, endpoint, token)


@hosted_app.command("hook")
def hosted_hook(
    repo_id: str = RepoArgument,
    block: Optional[List[str]] = typer.Option(None, "--block", help="A regular expression to refuse (repeatable; "
                                                                    "replaces the list)."),
    clear_blocklist: bool = typer.Option(False, "--clear-blocklist", help="Remove every pattern."),
    moderation_url: Optional[str] = typer.Option(None, "--moderation-url", help="POSTed {input, model} before each "
                                                                                "call; {flagged: true} (or OpenAI's "
                                                                                "results[0].flagged) refuses it. "
                                                                                "'' removes it."),
    store_prompts: Optional[bool] = typer.Option(None, "--store-prompts/--no-store-prompts",
                                                 help="Keep prompts in the audit log (off by default)."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """The releaser's policy hook: a blocklist and/or a moderation service, checked before forwarding; needs
    a server admin's token."""
    check_repo_id(repo_id)
    blocklist = [] if clear_blocklist else (list(block) if block else None)
    with remote(endpoint, token) as api:
        hosted = api.json("PUT", f"/api/models/{repo_id}/hosted/hook",
                          json={"blocklist": blocklist, "moderationUrl": moderation_url,
                                "storePrompts": store_prompts})
    console.print(f"{repo_id}: blocklist {hosted['blocklist']}, moderation {hosted['moderationUrl'] or 'none'}, "
                  f"prompts {'stored' if hosted['storePrompts'] else 'not stored'}.", markup=False, soft_wrap=True)


@hosted_app.command("detach")
def hosted_detach(
    repo_id: str = RepoArgument,
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Stop serving REPO through /v1 (keys stay; a hosted-only policy stays until `policy set`); needs a
    server admin's token."""
    check_repo_id(repo_id)
    with remote(endpoint, token) as api:
        api.json("DELETE", f"/api/models/{repo_id}/hosted")
    console.print(f"{repo_id} is no longer served through /v1.", markup=False)


@keys_app.command("create")
def keys_create(
    user: str = typer.Argument(..., help="The user the key acts for."),
    repo: List[str] = typer.Option(..., "--repo", help="A hosted repo the key may call (repeatable)."),
    tier: str = typer.Option(DEFAULT_TIER, "--tier", help="A tier of the repos' policy; its `api` section "
                                                          "sets the limits."),
    expires_in: Optional[int] = typer.Option(None, "--expires-in", help="Days until the key expires."),
    name: Optional[str] = typer.Option(None, "--name", help="A label."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Create an API key (needs the admin role of every repo named). The secret is printed once, as the last
    line (the OpenAI client's api_key)."""
    for repo_id in repo:
        check_repo_id(repo_id)
    with remote(endpoint, token) as api:
        new = api.json("POST", "/api/gateway/keys", json={"user": user, "repos": list(repo), "tier": tier,
                                                          "expiresInDays": expires_in, "name": name})
    expiry = f", expires {new['expires_at'][:10]}" if new["expires_at"] else ""
    console.print(f"created API key {new['key']} for {user} (tier {tier}; {', '.join(repo)}{expiry}); "
                  "it is shown only once:", markup=False, soft_wrap=True)
    print(new["secret"])


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="The key id (rhk_...), or the whole secret."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Shown to the key's user."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Revoke a key (yours, one of a repo you administer, or any for a server admin): refused from the next
    request, on every replica."""
    # Only the id travels: a whole secret pasted here must not end up in a URL (and the server's logs).
    wanted = key_id.split(".", 1)[0]
    with remote(endpoint, token) as api:
        key = api.json("DELETE", f"/api/gateway/keys/{wanted}", params={"reason": reason} if reason else None)
    console.print(f"revoked {key['key']}.", markup=False)


@keys_app.command("list")
def keys_list(
    user: Optional[str] = typer.Option(None, "--user", help="Only this user's keys (another's: a server admin)."),
    repo: Optional[str] = typer.Option(None, "--repo", help="Only the keys of this repo (its admins)."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """List API keys (never their secrets): yours, a repo's for its admins, everybody's for a server admin."""
    if repo is not None:
        check_repo_id(repo)
    params = {k: v for k, v in (("user", user), ("repo", repo)) if v is not None}
    with remote(endpoint, token) as api:
        rows = api.json("GET", "/api/gateway/keys", params=params)
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    table = Table("key", "user", "tier", "repos", "state", "expires")
    for row in rows:
        table.add_row(row["key"], Text(row["user"] or "?"), Text(row["tier"]), ", ".join(row["repos"]),
                      row["state"], (row["expires_at"] or "never")[:10])
    console.print(table)


_COUNTS = ("requests", "refused", "errors", "prompt_tokens", "completion_tokens")


def _group(rows: list[dict[str, Any]], by: str) -> list[tuple[str, list[int]]]:
    totals: dict[str, list[int]] = {}
    for row in rows:
        sums = totals.setdefault(str(row[by]), [0] * len(_COUNTS))
        for i, name in enumerate(_COUNTS):
            sums[i] += int(row[name] or 0)
    return sorted(totals.items())


def usage(
    repo: Optional[str] = typer.Option(None, "--repo", help="Only this repo."),
    key: Optional[str] = typer.Option(None, "--key", help="Only this key id."),
    user: Optional[str] = typer.Option(None, "--user", help="Only this user's keys."),
    days: int = typer.Option(30, "--days", help="How many days back, today included (at most 366)."),
    by: str = typer.Option("day", "--by", help="Group by day, key or repo."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
) -> None:
    """Gateway usage: requests, refusals, engine errors and tokens, per day, key or repo (every key of the
    repos you administer, your own keys elsewhere)."""
    if by not in ("day", "key", "repo"):
        raise typer.BadParameter("--by must be day, key or repo")
    if not 1 <= days <= 366:
        raise typer.BadParameter("--days must be from 1 to 366")
    if repo is not None:
        check_repo_id(repo)
    params: dict[str, Any] = {"days": days}
    if repo is not None:
        params["repo"] = repo
    with remote(endpoint, token) as api:
        rows = api.json("GET", "/api/gateway/usage", params=params)
    wanted_key = key.split(".", 1)[0] if key else None
    rows = [r for r in rows if (wanted_key is None or r["key"] == wanted_key) and (user is None or r.get("user") == user)]
    grouped = _group(rows, by)
    if as_json:
        for group, sums in grouped:
            print(json.dumps({by: group, **dict(zip(_COUNTS, sums))}))
        return
    table = Table(by, "requests", "refused", "errors", "tokens in", "tokens out")
    for group, (r, f, e, i, o) in grouped:
        table.add_row(group, f"{r:,}", f"{f:,}", f"{e:,}", f"{i:,}", f"{o:,}")
    console.print(table)
