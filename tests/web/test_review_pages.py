"""Reviewing access requests on the page: the same service calls as the Hub's review API."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
from fastapi.testclient import TestClient

from releasehub.access import service as access_service
from releasehub.access.models import AccessRequest
from releasehub.accounts import service as accounts
from releasehub.db import utcnow
from releasehub.repos import service as repos
from tests.web.conftest import Site, csrf

CARD = b"""---
license: apache-2.0
extra_gated_fields:
  Company: text
---
# A gated model
"""


def _value(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match is not None
    return match.group(1)


def _ask(site: Site, repo_id: str, user: str, company: str = "ACME") -> TestClient:
    """`user` asks for access through the gate form; their browser, to look at the outcome."""
    browser = site.browser(user)
    gate = browser.get(f"/{repo_id}/access")
    answer = browser.post(f"/{repo_id}/access", data={
        "csrf_token": csrf(gate.text), "field-0": company, "accept_license": "on",
        "license_sha256": _value(gate.text, "license_sha256")}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return browser


def _row(site: Site, repo_id: str, user: str) -> AccessRequest | None:
    namespace, name = repo_id.split("/")
    with site.services.db.session() as session:
        repo = repos.get_repo(session, namespace, name)
        row = access_service.grant_row(session, repo, accounts.get_user(session, user).id)
        if row is not None:
            session.expunge(row)
        return row


def _state(site: Site, repo_id: str, user: str) -> str:
    return access_service.status_of(_row(site, repo_id, user), utcnow())


def _gated(site: Site) -> tuple[str, str, str]:
    owner, requester = site.user(), site.user()
    repo_id = site.repo(owner, files={"README.md": CARD, "model.safetensors": b"x" * 64}, gated="manual")
    return owner, requester, repo_id


def _review(site: Site, repo_id: str, reviewer: str, status: str = "pending") -> tuple[TestClient, str]:
    browser = site.browser(reviewer)
    page = browser.get(f"/{repo_id}/settings/access-requests?status={status}")
    assert page.status_code == 200, page.text
    return browser, page.text


def _request_id(html: str, user: str, action: str) -> str:
    form = re.search(rf'aria-label="{action} {user}">(.*?)</form>', html, re.S)
    assert form is not None, f"no {action} form for {user}"
    return _value(form.group(1), "request_id")


def _handle(browser: TestClient, repo_id: str, html: str, user: str, action: str, tab: str = "pending",
            **fields: str) -> httpx.Response:
    data = {"csrf_token": csrf(html), "request_id": _request_id(html, user, action.capitalize()),
            "tab": tab, "action": action, **fields}
    return browser.post(f"/{repo_id}/settings/access-requests/handle", data=data, follow_redirects=False)


def test_outsider_and_reader_are_refused(site: Site) -> None:
    owner, reader, outsider = site.user(), site.user(), site.user()
    org = site.org(f"o{uuid.uuid4().hex[:6]}", owner)
    site.member(org, reader, "read")
    repo_id = site.repo(org, gated="manual")
    for who in (outsider, reader):
        browser = site.browser(who)
        assert browser.get(f"/{repo_id}/settings/access-requests").status_code == 403
        answer = browser.post(f"/{repo_id}/settings/access-requests/grant", data={"user": who})
        assert answer.status_code == 403
    assert _state(site, repo_id, reader) == "none" and _state(site, repo_id, outsider) == "none"


def test_writer_reviews_and_private_repo_is_missing_to_outsiders(site: Site) -> None:
    owner, writer, outsider = site.user(), site.user(), site.user()
    org = site.org(f"o{uuid.uuid4().hex[:6]}", owner)
    site.member(org, writer, "write")
    repo_id = site.repo(org, gated="manual", visibility="private")
    _review(site, repo_id, writer)  # review is the write role's, as on the Hub
    browser = site.browser(outsider)
    shown = browser.get(f"/{repo_id}/settings/access-requests")
    missing = browser.get(f"/{org}/no-such-repo/settings/access-requests")
    assert shown.status_code == missing.status_code == 404
    assert shown.text.replace(repo_id, "X") == missing.text.replace(f"{org}/no-such-repo", "X")
    # A bad query is checked after the repo: it tells nothing of a repo the viewer may not see.
    assert browser.get(f"/{repo_id}/settings/access-requests?status=bogus&cursor=-1").status_code == 404
    assert site.browser(writer).get(f"/{repo_id}/settings/access-requests?status=bogus").status_code == 400


def test_pending_request_shows_its_answers_and_accept_with_expiry(site: Site) -> None:
    owner, requester, repo_id = _gated(site)
    asker = _ask(site, repo_id, requester, company="Umbrella <b>Corp</b>")
    browser, html = _review(site, repo_id, owner)
    assert re.search(rf'<th scope="row">{requester}', html)
    assert "<dt>Company</dt><dd>Umbrella &lt;b&gt;Corp&lt;/b&gt;</dd>" in html
    assert f'aria-label="Accept {requester}"' in html and f'aria-label="Reject {requester}"' in html
    until = (utcnow() + timedelta(days=30)).date()
    answer = _handle(browser, repo_id, html, requester, "accept", expires=until.isoformat())
    assert answer.status_code == 303
    row = _row(site, repo_id, requester)
    assert row is not None and _state(site, repo_id, requester) == "accepted"
    assert row.expires_at is not None and row.expires_at.date() == until
    assert "Your request was accepted" in asker.get(f"/{repo_id}/access").text
    accepted = browser.get(f"/{repo_id}/settings/access-requests?status=accepted&notice=accept").text
    assert "The request was accepted." in accepted and f'aria-label="Revoke {requester}"' in accepted
    assert until.isoformat() in accepted


def test_reject_with_reason_then_the_requester_asks_again(site: Site) -> None:
    owner, requester, repo_id = _gated(site)
    asker = _ask(site, repo_id, requester)
    browser, html = _review(site, repo_id, owner)
    answer = _handle(browser, repo_id, html, requester, "reject", reason="Tell us your institution")
    assert answer.status_code == 303
    assert _state(site, repo_id, requester) == "rejected"
    gate = asker.get(f"/{repo_id}/access").text
    assert "rejected" in gate and "Tell us your institution" in gate and "ask again" in gate
    _ask(site, repo_id, requester, company="ACME University")
    assert _state(site, repo_id, requester) == "pending"
    assert "ACME University" in _review(site, repo_id, owner)[1]


def test_revoke_and_cancel(site: Site) -> None:
    owner, requester, repo_id = _gated(site)
    asker = _ask(site, repo_id, requester)
    browser, html = _review(site, repo_id, owner)
    _handle(browser, repo_id, html, requester, "accept")
    assert "You can download this model" in asker.get(f"/{repo_id}").text
    html = browser.get(f"/{repo_id}/settings/access-requests?status=accepted").text
    answer = _handle(browser, repo_id, html, requester, "revoke", tab="accepted", reason="Licence breach")
    assert answer.status_code == 303
    assert answer.headers["location"].endswith("status=accepted&notice=revoke")
    assert _state(site, repo_id, requester) == "revoked"
    model_page = asker.get(f"/{repo_id}").text
    assert "You can download this model" not in model_page
    assert "Your access was <strong>revoked</strong>: Licence breach" in model_page
    html = browser.get(f"/{repo_id}/settings/access-requests?status=rejected").text
    assert "<strong>revoked</strong>: Licence breach" in html
    _handle(browser, repo_id, html, requester, "cancel", tab="rejected")
    assert _state(site, repo_id, requester) == "pending"


def test_grant_access_and_its_errors(site: Site) -> None:
    owner, requester, repo_id = _gated(site)
    browser, html = _review(site, repo_id, owner)
    url = f"/{repo_id}/settings/access-requests/grant"
    unknown = browser.post(url, data={"csrf_token": csrf(html), "user": "nobody-here", "expires": ""})
    assert unknown.status_code == 400
    assert re.search(r'<p class="alert" role="alert">No user named &#39;nobody-here&#39;', unknown.text)
    assert 'value="nobody-here"' in unknown.text  # what was typed stays in the form
    past = browser.post(url, data={"csrf_token": csrf(html), "user": requester, "expires": "2020-01-01"})
    assert past.status_code == 400 and "The expiry must lie in the future." in past.text
    assert _state(site, repo_id, requester) == "none"
    until = (utcnow() + timedelta(days=10)).date().isoformat()
    granted = browser.post(url, data={"csrf_token": csrf(html), "user": requester, "expires": until},
                           follow_redirects=False)
    assert granted.status_code == 303
    assert _state(site, repo_id, requester) == "accepted"
    assert "Access was granted." in browser.get(granted.headers["location"]).text


def test_accept_with_a_past_expiry_changes_nothing(site: Site) -> None:
    owner, requester, repo_id = _gated(site)
    _ask(site, repo_id, requester)
    browser, html = _review(site, repo_id, owner)
    answer = _handle(browser, repo_id, html, requester, "accept", expires="2001-02-03")
    assert answer.status_code == 400
    text = answer.text
    assert re.search(r'id="request-\w+">.*?role="alert">The expiry must lie in the future', text, re.S)
    assert 'value="2001-02-03"' in text
    assert _state(site, repo_id, requester) == "pending"
    garbled = _handle(browser, repo_id, html, requester, "accept", expires="next tuesday")
    assert garbled.status_code == 400
    assert _state(site, repo_id, requester) == "pending"


def test_accept_with_a_tier(site: Site) -> None:
    owner, requester = site.user(), site.user()
    policy = {"tiers": [{"name": "public", "components": ["documentation"]},
                        {"name": "researcher", "components": ["weights"]},
                        {"name": "auditor", "components": ["*"]}]}
    repo_id = site.repo(owner, files={"README.md": CARD}, policy=policy, gated="manual")
    browser = site.browser(requester)
    gate = browser.get(f"/{repo_id}/access")
    browser.post(f"/{repo_id}/access", data={
        "csrf_token": csrf(gate.text), "field-0": "ACME", "accept_license": "on", "tier": "researcher",
        "license_sha256": _value(gate.text, "license_sha256")})
    reviewer, html = _review(site, repo_id, owner)
    assert '<option value="auditor">' in html and '<option value="public">' not in html
    _handle(reviewer, repo_id, html, requester, "accept", tier="auditor")
    row = _row(site, repo_id, requester)
    assert row is not None and row.status == "accepted" and row.tier == "auditor"


def test_review_post_without_csrf_is_refused(site: Site) -> None:
    owner, requester, repo_id = _gated(site)
    _ask(site, repo_id, requester)
    browser, html = _review(site, repo_id, owner)
    answer = browser.post(f"/{repo_id}/settings/access-requests/handle", data={
        "request_id": _request_id(html, requester, "Accept"), "action": "accept", "tab": "pending"})
    assert answer.status_code == 403
    grant = browser.post(f"/{repo_id}/settings/access-requests/grant", data={"user": requester})
    assert grant.status_code == 403
    assert _state(site, repo_id, requester) == "pending"
