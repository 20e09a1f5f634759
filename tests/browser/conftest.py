"""Real-browser tests: Debian's Chromium, driven by Playwright, against a real `releasehub serve`.

Playwright never downloads a browser here: it launches /usr/bin/chromium (`RELEASEHUB_CHROMIUM`
overrides it). axe-core comes from npm into .venv/axe (the Makefile's test stamp installs it).
Outside CI a missing Chromium, Playwright or axe-core skips these tests with the reason; under CI
(`CI` set) it fails them, so the browser checks cannot silently stop running.

People and releases are made the way real users make them: accounts in the server's database
(as `releasehub users` does), repos and files through the unchanged `huggingface_hub` client.
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, NoReturn

import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from releasehub.accounts import sessions
from tests.conftest import ServerProcess, start_server, stop_server

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips, or fails under CI, with the reason
    expect = None  # type: ignore[assignment]

CHROMIUM = os.environ.get("RELEASEHUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]
AXE = Path(__file__).resolve().parents[2] / ".venv" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "a long browser test password"
VIEWPORT = {"width": 1280, "height": 900}
# The gate of the flow tests and the accessibility audit: a text field, a country, a checkbox.
GATED_CARD = """---
license: apache-2.0
extra_gated_prompt: Tell us who you are and what you will do with the model.
extra_gated_fields:
  Company: text
  Country: country
  I will use it for research only: checkbox
extra_gated_button_content: Send my request
---
# A gated model

Weights for people who ask first.
"""


def unavailable(reason: str) -> NoReturn:
    """Skip outside CI; fail under CI, where the browser tests must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (see docs/web.md)", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Person:
    name: str
    token: str

    def api(self, server: ServerProcess) -> HfApi:
        return HfApi(endpoint=server.url, token=self.token)


def person(server: ServerProcess, name: str | None = None) -> Person:
    """A user with a password (for the sign-in form) and a write token (for the Hub client)."""
    name, token = server.user(name or f"u{uuid.uuid4().hex[:8]}")
    with server.db.session() as session:
        sessions.set_password(session, name, PASSWORD)
    return Person(name, token)


def safetensors_bytes() -> bytes:
    """A small but valid safetensors file, so the access profile has real weights to read."""
    import numpy as np
    from safetensors.numpy import save

    return save({"model.embed_tokens.weight": np.zeros((32, 8), dtype=np.float32),
                 "lm_head.weight": np.zeros((32, 8), dtype=np.float32)})


def release(server: ServerProcess, owner: Person, card: str, *, gated: Literal["auto", "manual"] | None = None,
            files: dict[str, bytes] | None = None) -> str:
    """A repo of `owner` with README.md = `card` and a weights file, pushed with the Hub client."""
    api = owner.api(server)
    repo_id = f"{owner.name}/m-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    contents = {"README.md": card.encode(), "model.safetensors": safetensors_bytes(), **(files or {})}
    api.create_commit(repo_id, [CommitOperationAdd(path, io.BytesIO(data)) for path, data in contents.items()],
                      commit_message="Release")
    if gated is not None:
        api.update_repo_settings(repo_id, gated=gated)
    return repo_id


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server (SQLite) for the browser tests of this worker."""
    proc = start_server(tmp_path_factory.mktemp("browser-server"), "")
    yield proc
    stop_server(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module (a module, not the session: Playwright's sync API keeps an event
    loop of its own while it runs, which other modules' asyncio code must not meet)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.exists():
        unavailable(f"axe-core is not installed at {AXE} (make install, or npm install --prefix .venv/axe axe-core@4)")
    return AXE.read_text()


def new_page(browser: Any, server: ServerProcess, **options: Any) -> Any:
    """A page in a fresh context: its own cookies, as another person's browser."""
    context = browser.new_context(base_url=server.url, viewport=VIEWPORT, **options)
    context.set_default_timeout(10_000)  # a missing element fails in seconds, not Playwright's 30
    return context.new_page()


def sign_in(page: Any, who: Person, next_path: str) -> None:
    """Sign in through the form, as a person does, and land on `next_path`."""
    page.goto(f"/login?next={next_path}")
    page.get_by_label("User name").fill(who.name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert page.url.endswith(next_path), page.url


def signed_in_page(browser: Any, server: ServerProcess, who: Person, next_path: str, **options: Any) -> Any:
    page = new_page(browser, server, **options)
    sign_in(page, who, next_path)
    return page
