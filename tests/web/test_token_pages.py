"""Personal settings pages: access tokens and gateway API keys, shown once, revoked, refused."""

from __future__ import annotations

import html
import re

import httpx
from fastapi.testclient import TestClient

from releasehub.accounts import service as accounts
from releasehub.gateway import service as gateway
from releasehub.repos import service as repos
from tests.web.conftest import Site, csrf

ONCE = "Copy it now; it is not shown again."
_SECRET = re.compile(r'id="new-secret" class="secret" readonly value="([^"]+)"')


def _secret(html: str) -> str:
    match = _SECRET.search(html)
    assert match is not None, "no secret on the page"
    return match.group(1)


def _text(answer: httpx.Response) -> str:
    return html.unescape(answer.text)


def _whoami(site: Site, token: str) -> int:
    return site.client.get("/api/whoami-v2", headers={"Authorization": f"Bearer {token}"}).status_code


def _token_ids(site: Site, user: str) -> list[int]:
    with site.services.db.session() as session:
        return [token.id for token in accounts.list_tokens(session, user)]


def _create_token(browser: TestClient, **fields: str) -> httpx.Response:
    page = browser.get("/settings/tokens")
    return browser.post("/settings/tokens", data={"csrf_token": csrf(page.text), **fields})


def _token_session(site: Site, user: str, scope: str) -> TestClient:
    browser = site.browser()
    page = browser.get("/login")
    answer = browser.post("/login", data={"csrf_token": csrf(page.text), "token": site.token(user, scope)},
                          follow_redirects=False)
    assert answer.status_code == 303
    return browser


def test_token_is_shown_once_works_and_stops_working_when_revoked(site: Site) -> None:
    user = site.user()
    browser = site.browser(user)
    answer = _create_token(browser, name="laptop", scope="write", expires_days="30")
    assert answer.status_code == 200, answer.text
    assert ONCE in answer.text and "no-store" in answer.headers["cache-control"]
    secret = _secret(answer.text)
    whoami = site.client.get("/api/whoami-v2", headers={"Authorization": f"Bearer {secret}"})
    assert whoami.status_code == 200 and whoami.json()["name"] == user
    assert whoami.json()["auth"]["accessToken"] == {**whoami.json()["auth"]["accessToken"], "displayName": "laptop",
                                                    "role": "write"}
    listing = browser.get("/settings/tokens")
    assert "laptop" in listing.text and secret[:9] in listing.text  # the prefix, listed
    assert secret not in listing.text and ONCE not in listing.text  # never again
    (token_id,) = _token_ids(site, user)
    revoked = browser.post("/settings/tokens/revoke", data={"csrf_token": csrf(listing.text),
                                                            "token_id": str(token_id)}, follow_redirects=False)
    assert revoked.status_code == 303 and revoked.headers["location"] == "/settings/tokens"
    assert "secret" not in revoked.headers["location"]
    assert _whoami(site, secret) == 401
    assert "revoked" in browser.get("/settings/tokens").text


def test_bad_token_input_is_shown_in_place_and_creates_nothing(site: Site) -> None:
    user = site.user()
    browser = site.browser(user)
    for fields in ({"name": "x", "scope": "admin"}, {"name": "x", "scope": "read", "expires_days": "0"},
                   {"name": "x", "scope": "read", "expires_days": "99999999"}, {"name": "n" * 101, "scope": "read"}):
        answer = _create_token(browser, **fields)
        assert answer.status_code == 400, fields
        assert 'role="alert"' in answer.text and ONCE not in answer.text
    assert _token_ids(site, user) == []


def test_a_read_token_session_cannot_create_a_write_token(site: Site) -> None:
    user = site.user()
    browser = _token_session(site, user, "read")
    before = _token_ids(site, user)
    refused = _create_token(browser, name="escalate", scope="write")
    assert refused.status_code == 403
    assert "read token" in refused.text and ONCE not in refused.text
    assert _token_ids(site, user) == before
    allowed = _create_token(browser, name="another reader", scope="read")
    assert allowed.status_code == 200 and ONCE in allowed.text
    with site.services.db.session() as session:
        assert [t.scope for t in accounts.list_tokens(session, user)] == ["read", "read"]


def test_revoking_another_users_token_answers_as_a_missing_one(site: Site) -> None:
    user, other = site.user(), site.user()
    theirs = site.token(other, "write")
    (their_id,) = _token_ids(site, other)
    browser = site.browser(user)
    page = browser.get("/settings/tokens")
    answers = [browser.post("/settings/tokens/revoke", data={"csrf_token": csrf(page.text), "token_id": str(i)})
               for i in (their_id, 999_999)]
    assert [a.status_code for a in answers] == [404, 404]
    assert _text(answers[0]).replace(f"'{their_id}'", "N") == _text(answers[1]).replace("'999999'", "N")
    assert _whoami(site, theirs) == 200
    assert other not in answers[0].text


def test_forms_without_csrf_are_refused_and_change_nothing(site: Site) -> None:
    user = site.user()
    mine = site.token(user, "read")
    (token_id,) = _token_ids(site, user)
    browser = site.browser(user)
    assert browser.post("/settings/tokens", data={"name": "x", "scope": "read"}).status_code == 403
    assert browser.post("/settings/tokens", data={"name": "x", "scope": "read",
                                                  "csrf_token": "forged"}).status_code == 403
    assert browser.post("/settings/tokens/revoke", data={"token_id": str(token_id)}).status_code == 403
    assert browser.post("/settings/keys", data={"repo": "a/b"}).status_code == 403
    assert _token_ids(site, user) == [token_id] and _whoami(site, mine) == 200


def test_settings_need_a_signed_in_viewer(site: Site) -> None:
    for path in ("/settings/tokens", "/settings/keys"):
        answer = site.browser().get(path)
        assert answer.status_code == 401 and 'href="/login"' in answer.text


# ----------------------------------------------------------------------------------------- keys

POLICY = {"tiers": [{"name": "public", "components": ["documentation"]},
                    {"name": "researcher", "components": ["documentation", "evaluations"], "review": "manual"}]}


def _hosted(site: Site, owner: str, **repo: object) -> str:
    repo_id = site.repo(owner, files={"README.md": b"# hosted\n"}, **repo)  # type: ignore[arg-type]
    namespace, name = repo_id.split("/")
    with site.services.db.session() as session:
        row = repos.get_repo(session, namespace, name)
        gateway.attach(session, row, backend_url="http://127.0.0.1:9/v1", engine_model=None, api_key_env=None,
                       hosted_only=False, actor=owner)
        session.commit()
    return repo_id


def _create_key(browser: TestClient, **fields: str) -> httpx.Response:
    page = browser.get("/settings/keys")
    return browser.post("/settings/keys", data={"csrf_token": csrf(page.text), **fields})


def _models(site: Site, key: str) -> httpx.Response:
    return site.client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})


def _keys_of(site: Site, user: str) -> list[dict[str, object]]:
    with site.services.db.session() as session:
        return gateway.list_keys(session, user=user)


def test_key_is_shown_once_calls_the_gateway_and_is_revoked(site: Site) -> None:
    owner, user = site.user(), site.user()
    repo_id = _hosted(site, owner)
    browser = site.browser(user)
    answer = _create_key(browser, repo=repo_id, name="notebook", expires_days="7")
    assert answer.status_code == 200, answer.text
    assert ONCE in answer.text and "no-store" in answer.headers["cache-control"]
    secret = _secret(answer.text)
    models = _models(site, secret)
    assert models.status_code == 200 and [m["id"] for m in models.json()["data"]] == [repo_id]
    listing = browser.get("/settings/keys")
    (key,) = _keys_of(site, user)
    assert key["tier"] == "default" and key["name"] == "notebook"
    assert str(key["key"]) in listing.text and secret not in listing.text
    revoked = browser.post("/settings/keys/revoke", data={"csrf_token": csrf(listing.text), "key": str(key["key"])},
                           follow_redirects=False)
    assert revoked.status_code == 303
    assert _models(site, secret).status_code == 401
    assert "revoked" in browser.get("/settings/keys").text


def test_a_hidden_repo_answers_as_a_missing_one_and_no_key_is_made(site: Site) -> None:
    owner, user = site.user(), site.user()
    hidden = _hosted(site, owner, visibility="private")
    browser = site.browser(user)
    shown, missing = _create_key(browser, repo=hidden), _create_key(browser, repo=f"{owner}/no-such-repo")
    assert shown.status_code == missing.status_code == 404
    assert shown.text.replace(hidden, "X") == missing.text.replace(f"{owner}/no-such-repo", "X")
    assert _keys_of(site, user) == []


def test_keys_need_the_gate_the_tier_and_an_attached_engine(site: Site) -> None:
    owner, user = site.user(), site.user()
    gated = _hosted(site, owner, gated="manual")
    tiered = _hosted(site, owner, policy=POLICY)
    plain = site.repo(owner, files={"README.md": b"# not hosted\n"})
    browser = site.browser(user)
    refused = _create_key(browser, repo=gated)
    assert refused.status_code == 403 and "restricted" in refused.text
    above = _create_key(browser, repo=tiered, tier="researcher")
    assert above.status_code == 403 and "tier 'public', not 'researcher'" in _text(above)
    unhosted = _create_key(browser, repo=plain)
    assert unhosted.status_code == 400 and "no engine attached" in unhosted.text
    assert _keys_of(site, user) == []
    own_tier = _create_key(browser, repo=tiered)
    assert own_tier.status_code == 200 and ONCE in own_tier.text
    assert [k["tier"] for k in _keys_of(site, user)] == ["public"]
    team = site.browser(owner)
    assert _create_key(team, repo=tiered, tier="researcher").status_code == 200
    assert _create_key(team, repo=tiered, tier="nonesuch").status_code == 400


def test_revoking_another_users_key_answers_as_a_missing_one(site: Site) -> None:
    owner, user = site.user(), site.user()
    repo_id = _hosted(site, owner)
    secret = _secret(_create_key(site.browser(owner), repo=repo_id).text)
    (theirs,) = _keys_of(site, owner)
    browser = site.browser(user)
    page = browser.get("/settings/keys")
    answers = [browser.post("/settings/keys/revoke", data={"csrf_token": csrf(page.text), "key": key})
               for key in (str(theirs["key"]), "rhk_000000000000")]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].text.replace(str(theirs["key"]), "K") == answers[1].text.replace("rhk_000000000000", "K")
    assert _models(site, secret).status_code == 200
