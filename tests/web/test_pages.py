"""The model page, the gate and sign-in, in-process (the browser tests drive the same pages in Chromium)."""

from __future__ import annotations

from tests.web.conftest import Site, csrf

CARD = b"""---
license: apache-2.0
extra_gated_prompt: Tell us who you are.
extra_gated_fields:
  Company: text
  I agree to use it for research only: checkbox
extra_gated_button_content: Send my request
---
# A gated model
"""


def test_model_page_shows_card_license_and_place(site: Site) -> None:
    owner = site.user()
    repo_id = site.repo(owner, files={"README.md": b"---\nlicense: mit\n---\n# Hello *card*\n"})
    page = site.browser().get(f"/{repo_id}")
    assert page.status_code == 200
    assert "<em>card</em>" in page.text
    assert "MIT License" in page.text
    assert 'class="place place-open"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_gate_request_then_pending(site: Site) -> None:
    owner, requester = site.user(), site.user()
    repo_id = site.repo(owner, files={"README.md": CARD, "model.safetensors": b"x" * 100}, gated="manual")
    browser = site.browser(requester)
    gate = browser.get(f"/{repo_id}/access")
    assert "Send my request" in gate.text and "Company" in gate.text
    answer = browser.post(f"/{repo_id}/access", data={
        "csrf_token": csrf(gate.text), "field-0": "ACME", "field-1": "on", "accept_license": "on",
        "license_sha256": _value(gate.text, "license_sha256")}, follow_redirects=True)
    assert answer.status_code == 200, answer.text[answer.text.find("<main"):][:1500]
    assert "pending" in answer.text


def test_gate_form_without_csrf_is_refused_and_nothing_is_recorded(site: Site) -> None:
    owner, requester = site.user(), site.user()
    repo_id = site.repo(owner, files={"README.md": CARD}, gated="manual")
    browser = site.browser(requester)
    gate = browser.get(f"/{repo_id}/access")
    answer = browser.post(f"/{repo_id}/access", data={
        "field-0": "ACME", "field-1": "on", "accept_license": "on",
        "license_sha256": _value(gate.text, "license_sha256")})
    assert answer.status_code == 403
    assert "pending" not in browser.get(f"/{repo_id}/access").text


def test_hidden_repo_page_is_the_missing_page(site: Site) -> None:
    owner, outsider = site.user(), site.user()
    hidden = site.repo(owner, visibility="private")
    for browser in (site.browser(), site.browser(outsider)):
        shown, missing = browser.get(f"/{hidden}"), browser.get(f"/{owner}/no-such-repo")
        assert shown.status_code == missing.status_code == 404
        assert shown.text.replace(hidden, "X") == missing.text.replace(f"{owner}/no-such-repo", "X")


def test_sign_in_with_a_token_and_sign_out_ends_the_session(site: Site) -> None:
    user = site.user()
    browser = site.browser()
    page = browser.get("/login")
    answer = browser.post("/login", data={"csrf_token": csrf(page.text), "token": site.token(user, "read")},
                          follow_redirects=False)
    assert answer.status_code == 303
    cookie = browser.cookies.get("releasehub_session")
    home = browser.get("/login")
    assert user in home.text
    browser.post("/logout", data={"csrf_token": csrf(home.text)})
    stolen = site.browser()
    stolen.cookies.set("releasehub_session", cookie or "")
    assert user not in stolen.get("/login").text


def test_wrong_password_is_refused(site: Site) -> None:
    user = site.user()
    browser = site.browser()
    page = browser.get("/login")
    answer = browser.post("/login", data={"csrf_token": csrf(page.text), "username": user, "password": "wrong one!!"})
    assert answer.status_code == 400 and "Wrong user name or password" in answer.text
    assert "releasehub_session" not in browser.cookies


def _value(html: str, name: str) -> str:
    import re

    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match is not None
    return match.group(1)


def test_revoking_the_token_a_browser_signed_in_with_ends_that_session(site: Site) -> None:
    from releasehub.accounts import service as accounts

    user = site.user()
    token = site.token(user, "read")
    browser = site.browser()
    page = browser.get("/login")
    browser.post("/login", data={"csrf_token": csrf(page.text), "token": token})
    assert user in browser.get("/login").text
    with site.services.db.session() as session:
        (row,) = [t for t in accounts.list_tokens(session, user) if token.startswith(t.prefix)]
        accounts.revoke_token(session, row.id)
    assert user not in browser.get("/login").text
