"""`releasehub serve`, `releasehub demo` and `releasehub db upgrade`."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from releasehub.cli.common import (
    DatabaseUrlOption,
    DataDirOption,
    console,
    database,
    friendly_errors,
    load_settings,
    show_data_dir,
)
from releasehub.safepath import drop_cwd_from_sys_path
from releasehub.settings import Settings

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


def load_app() -> Any:
    """Granian's target loader, run in each worker: the app, imported without the working directory.

    Granian's own loader puts the working directory first on `sys.path` before importing the
    target, so a stray `h2.py` there would shadow the real library; this one imports the
    installed package as it is.
    """
    drop_cwd_from_sys_path()
    from releasehub.app import app_from_env

    return app_from_env()


def run_server(settings: Settings, host: str, port: int, workers: int) -> None:
    """Run the ASGI app under granian; worker processes read the settings from the environment."""
    drop_cwd_from_sys_path()
    from granian import Granian
    from granian.constants import Interfaces

    with database(settings, create=True):
        pass  # migrate once, before any worker starts
    os.environ.update(settings.to_env())
    Granian(
        "releasehub.app:app_from_env",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        log_access=False,
    ).serve(target_loader=load_app, wrap_loader=False)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", help="Worker processes."),
    public_url: Optional[str] = typer.Option(None, "--public-url", help="URL clients reach the server at."),
    data_dir: Optional[Path] = DataDirOption,
    database_url: Optional[str] = DatabaseUrlOption,
    storage_url: Optional[str] = typer.Option(
        None, "--storage-url", help="Where blobs live: file:///DIR or s3://BUCKET\\[/PREFIX] "
                                    "(default: $RELEASEHUB_STORAGE_URL, else blobs/ in the data dir)."),
) -> None:
    """Start the server (SQLite and local blobs in the data dir unless --database-url or --storage-url say)."""
    settings = Settings.from_env(data_dir=data_dir, database_url=database_url, storage_url=storage_url,
                                 public_url=public_url or f"http://{host}:{port}")
    show_data_dir(settings, data_dir)
    if settings.storage_url:
        console.print(f"blobs: {settings.storage_url}" + (f" at {settings.s3_endpoint_url}"
                                                          if settings.s3_endpoint_url else ""))
    with friendly_errors():
        console.print(f"releasehub serving on http://{host}:{port}")
        run_server(settings, host, port, workers)


def demo(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    data_dir: Optional[Path] = DataDirOption,
    no_serve: bool = typer.Option(False, "--no-serve", help="Only create the demo data."),
    hosted: bool = typer.Option(False, "--hosted", help="Also serve a hosted release through /v1 with vLLM "
                                "(needs the engine environment that `make test-engine` builds)."),
) -> None:
    """Create a demo release (a tiny generated model with a model card) in the data dir and serve it."""
    from releasehub.demo import BUILD_HINT, engine_env_dir, engine_python, seed_demo
    from releasehub.services import Services

    url = f"http://{host}:{port}"
    if hosted and no_serve:
        console.print("--hosted starts an engine for the server to call; it cannot go with --no-serve.")
        raise typer.Exit(2)
    if hosted and engine_python() is None:
        console.print(f"--hosted serves the demo model with vLLM, and there is no vLLM environment at "
                      f"{engine_env_dir()} (or $RELEASEHUB_ENGINE_ENV): {BUILD_HINT}. Without --hosted the "
                      "demo needs none.", soft_wrap=True, markup=False)
        raise typer.Exit(1)
    settings = Settings.from_env(data_dir=data_dir, public_url=url)
    show_data_dir(settings, data_dir)
    with friendly_errors():
        services = Services.build(settings)
        try:
            result = seed_demo(services)
        finally:
            services.close()
    hf, releasehub = _command("hf"), _command("releasehub")
    name = result.repo_id.split("/")[1]
    # soft_wrap: a command is printed on one line, whatever the terminal's width, so it pastes as printed.
    say = functools.partial(console.print, soft_wrap=True)
    say(f"[bold]demo release:[/bold] {result.repo_id} ({result.files} files) by user {result.user}")
    say("Download it with the unchanged Hugging Face CLI:")
    say(f"  HF_ENDPOINT={url} {hf} download {result.repo_id} --local-dir ./{name}")
    say(f"Write token of {result.user} (for uploads): {result.token}")
    say(f"  HF_ENDPOINT={url} HF_TOKEN={result.token} {hf} upload {result.repo_id} ./{name} .")
    say(f"  HF_ENDPOINT={url} HF_TOKEN={result.token} {releasehub} push DIR {result.user}/NEW-REPO")
    say("[bold]In a browser:[/bold]")
    say(f"  model page:    {url}/{result.repo_id}")
    say(f"  gated release: {url}/{result.gated_repo_id} (request access as visitor, review it as demo)")
    say(f"  sign in:       {url}/login")
    for user, password in result.passwords.items():
        say(f"  password of {user}: {password}")
    say("  (new passwords at every `releasehub demo`)")
    if hosted:
        _serve_hosted(settings, host, port, url)
    elif not no_serve:
        run_server(settings, host, port, 1)


def _serve_hosted(settings: Settings, host: str, port: int, url: str) -> None:
    """Start vLLM on the hosted demo model, attach it, print keys and a call, serve; stop vLLM after."""
    import json

    from releasehub.demo import build_hosted_model, seed_hosted, start_vllm
    from releasehub.services import Services

    say = functools.partial(console.print, soft_wrap=True, markup=False)
    work = settings.data_dir / "demo-engine"
    model_dir = work / "model"
    build_hosted_model(model_dir)  # deterministic: the same files as the repo holds
    say(f"starting vLLM on the hosted demo model (a minute or two on 2 cores; its log: {work}) ...")
    with friendly_errors():
        try:
            engine = start_vllm(model_dir, work, name="tiny-llama-hosted")
        except RuntimeError as exc:
            console.print(str(exc), markup=False)
            raise typer.Exit(1) from None
    try:
        say(f"vLLM ready after {engine.started_in_s:.0f} s at {engine.url}")
        services = Services.build(settings)
        try:
            demo = seed_hosted(services, model_dir, f"{engine.url}/v1", engine.model)
        finally:
            services.close()
        body = json.dumps({"model": demo.repo_id, "messages": [{"role": "user", "content": "Hello"}],
                           "max_tokens": 16})
        console.print(f"[bold]hosted release:[/bold] {demo.repo_id}, served through {url}/v1 by vLLM "
                      "(its weights never leave the server)", soft_wrap=True)
        for tier, key in demo.keys.items():
            say(f"  API key of visitor, tier {tier}: {key}")
        say(f"  curl {url}/v1/chat/completions -H 'Authorization: Bearer {demo.keys['public']}' "
            f"-H 'content-type: application/json' -d '{body}'")
        say(f"  python -c \"from openai import OpenAI; c = OpenAI(base_url='{url}/v1', "
            f"api_key='{demo.keys['researcher']}'); print(c.completions.create(model='{demo.repo_id}', "
            "prompt='Hello', max_tokens=8, logprobs=2))\"")
        run_server(settings, host, port, 1)
    finally:
        engine.stop()


def _command(name: str) -> str:
    """`name` when the shell finds this installation's own, else the full path of this installation's."""
    own = Path(sys.executable).parent / name
    found = shutil.which(name)
    if found is not None and (not own.exists() or Path(found).resolve() == own.resolve()):
        return name
    return str(own) if own.exists() else name


@db_app.command("upgrade")
def db_upgrade(data_dir: Optional[Path] = DataDirOption, database_url: Optional[str] = DatabaseUrlOption) -> None:
    """Apply database migrations (also done on every server start)."""
    settings = load_settings(data_dir, database_url)
    show_data_dir(settings, data_dir)
    with friendly_errors(), database(settings, create=True):
        console.print("database schema is up to date")
