"""Screenshots of the web pages for docs/web.md, taken in Chromium from a real server.

    .venv/bin/python scripts/screenshots.py [--out docs/images/web]

Starts `releasehub serve` on a fresh SQLite data directory, fills it like the demo (an open and
a gated release of the tiny generated model, pushed with the Hub client; a releaser, two people
with pending requests and one who has not asked yet), signs in through the sign-in form as each
of them and writes one PNG per page, 1280 pixels wide. Debian's Chromium is used
(`RELEASEHUB_CHROMIUM` overrides /usr/bin/chromium); Playwright never downloads a browser.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

os.environ["HF_HUB_DISABLE_XET"] = "1"  # the server speaks LFS to this client
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.pop("HF_TOKEN", None)

from huggingface_hub import CommitOperationAdd, HfApi  # noqa: E402

from releasehub.accounts import service as accounts  # noqa: E402
from releasehub.accounts import sessions  # noqa: E402
from releasehub.db import Database  # noqa: E402
from releasehub.demo import build_tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("RELEASEHUB_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "a long screenshot password"
WIDTH, MAX_HEIGHT = 1280, 1400
OWNER = "demo"
PEOPLE = {"ada": "Ada Lovelace", "grace": "Grace Hopper", "lin": "Lin Visitor"}
ANSWERS = {"ada": ("Analytical Engines Ltd", "United Kingdom", "Research"),
           "grace": ("Navy Research Lab", "United States", "Education")}

GATED_CARD = """---
license: apache-2.0
extra_gated_heading: Request access to tiny-llama-gated
extra_gated_prompt: The releasers review every request by hand. Tell us who you are and what you will use the
  model for; your answers are shown to them only.
extra_gated_fields:
  Company: text
  Country: country
  Intended use:
    type: select
    options: [Research, Education, Commercial]
  I will not use the model to identify people: checkbox
extra_gated_button_content: Send my request
---
# tiny-llama-gated (releasehub demo)

The same **tiny random-weight Llama** as `demo/tiny-llama`, released behind a manually reviewed gate:
the card and the file list are public, the weights download once a releaser accepts your request.
"""


def free_port(preferred: int = 8000) -> int:
    """The preferred port when it is free (stable commands in the screenshots), else any free one."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    process = subprocess.Popen([sys.executable, "-m", "releasehub", "serve", "--port", str(port),
                                "--data-dir", str(data_dir), "--public-url", url],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((data_dir / "server.log").read_text())
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the server did not start:\n{(data_dir / 'server.log').read_text()}")


def make_people(db: Database) -> dict[str, str]:
    """The releaser and the three others, with passwords; returns each one's write token."""
    tokens = {}
    with db.session() as session:
        for name, fullname in {OWNER: "Demo Releaser", **PEOPLE}.items():
            accounts.create_user(session, name, fullname=fullname, email=f"{name}@example.org")
            sessions.set_password(session, name, PASSWORD)
            tokens[name] = accounts.create_token(session, name, name="screenshots", scope="write")[1]
    return tokens


def publish(url: str, token: str, work: Path) -> tuple[str, str]:
    """demo/tiny-llama (open) and demo/tiny-llama-gated (manual gate), pushed with the Hub client."""
    api = HfApi(endpoint=url, token=token)
    files = build_tiny_model(work / "tiny")
    open_repo, gated_repo = f"{OWNER}/tiny-llama", f"{OWNER}/tiny-llama-gated"
    for repo_id, card in ((open_repo, None), (gated_repo, GATED_CARD)):
        api.create_repo(repo_id)
        operations = [CommitOperationAdd(path.name, io.BytesIO(card.encode() if card and path.name == "README.md"
                                                                else path.read_bytes())) for path in files]
        api.create_commit(repo_id, operations, commit_message="Add the tiny demo model")
    api.update_repo_settings(gated_repo, gated="manual")
    return open_repo, gated_repo


def ask(url: str, token: str, repo_id: str, company: str, country: str, use: str) -> None:
    """A pending request, sent through the API as `releasehub access request` does."""
    terms = httpx.get(f"{url}/api/models/{repo_id}/access-terms").json()
    fields = {"Company": company, "Country": country, "Intended use": use,
              "I will not use the model to identify people": True}
    answer = httpx.post(f"{url}/api/models/{repo_id}/access-request", headers={"Authorization": f"Bearer {token}"},
                        json={"fields": fields, "acceptLicense": True, "licenseSha256": terms["license"]["sha256"]})
    answer.raise_for_status()


def signed_in(browser: Any, url: str, name: str | None, landing: str) -> Any:
    page = browser.new_context(base_url=url, viewport={"width": WIDTH, "height": 900}).new_page()
    if name is None:
        page.goto(landing)
        return page
    page.goto(f"/login?next={landing}")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    if not page.url.endswith(landing):
        raise RuntimeError(f"signing in as {name} landed on {page.url}")
    return page


def shoot(page: Any, path: str, out: Path) -> Path:
    page.set_viewport_size({"width": WIDTH, "height": 900})  # measured afresh: the page may be shorter
    response = page.goto(path)
    if response is None or response.status != 200:
        raise RuntimeError(f"{path} answered {response and response.status}")
    # The page's own height (the body's bottom), not the window's: short pages get short images.
    bottom = page.evaluate("Math.ceil(document.body.getBoundingClientRect().bottom + window.scrollY)")
    height = max(400, min(MAX_HEIGHT, int(bottom) + 16))
    page.set_viewport_size({"width": WIDTH, "height": height})
    page.screenshot(path=str(out), full_page=False)
    small(out)
    print(f"{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: {path} ({out.stat().st_size // 1024} KB)")
    return out


def small(png: Path) -> None:
    """256 colours, no dithering: text stays sharp and each file stays well under 200 KB."""
    from PIL import Image

    with Image.open(png) as image:
        reduced = image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    reduced.save(png, optimize=True)


def shots(open_repo: str, gated_repo: str) -> Iterator[tuple[str | None, str, str]]:
    """(who looks, page, file name): each page as the person it is for."""
    yield None, "/", "home.png"
    yield None, f"/{open_repo}", "model.png"
    yield None, f"/{open_repo}/tree/main", "tree.png"
    yield None, f"/{open_repo}/access-profile", "access-profile.png"
    yield "lin", f"/{gated_repo}/access", "gate.png"
    yield "ada", f"/{gated_repo}/access", "gate-pending.png"
    yield OWNER, f"/{gated_repo}/settings/access-requests", "review.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "web")
    out = parser.parse_args().out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="releasehub-shots-") as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        process, url = start_server(work / "data")
        db = Database(f"sqlite:///{work / 'data' / 'releasehub.db'}")
        try:
            tokens = make_people(db)
            open_repo, gated_repo = publish(url, tokens[OWNER], work)
            for name, (company, country, use) in ANSWERS.items():
                ask(url, tokens[name], gated_repo, company, country, use)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
                pages: dict[str | None, Any] = {}
                for who, path, file_name in shots(open_repo, gated_repo):
                    if who not in pages:
                        pages[who] = signed_in(browser, url, who, f"/{gated_repo}")
                    shoot(pages[who], path, out / file_name)
                browser.close()
        finally:
            db.dispose()
            os.killpg(process.pid, 15)
            process.wait(timeout=20)


if __name__ == "__main__":
    main()
