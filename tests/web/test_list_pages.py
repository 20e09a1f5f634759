"""The list of releases: only what the viewer may see, counted right, in a constant number of queries."""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
from sqlalchemy import event

from releasehub.gateway import service as gateway_service
from releasehub.repos import service as repos
from releasehub.web import list_pages
from tests.web.conftest import Site, csrf

STAGED = {"stages": [{"name": "weights", "files": ["*.safetensors"],
                      "releases": [{"audience": "everyone", "at": "2099-01-01T00:00:00Z"}]}]}


def _listed(html: str) -> list[str]:
    return re.findall(r'<td><a href="/([^"]+)">', html[html.find("<main"):])


def _total(html: str) -> int:
    match = re.search(r'<p class="hint">(\d+) models?', html)
    assert match is not None, html
    return int(match.group(1))


@contextmanager
def counted(site: Site) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The request's statements only: the app's background threads (the webhook dispatcher's
        # poll, the collector, the audit log's download recorder) may run one meanwhile.
        if not threading.current_thread().name.startswith(("releasehub-", "audit-")):
            statements.append(statement)

    event.listen(site.services.db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(site.services.db.engine, "before_cursor_execute", count)


def test_private_and_internal_releases_of_others_never_appear(site: Site) -> None:
    owner, member, outsider = site.user(), site.user(), site.user()
    org = site.org(f"org{owner[1:6]}", owner)
    site.member(org, member, "read")
    public = site.repo(owner, "open-model")
    private = site.repo(owner, "secret-model", visibility="private")
    internal = site.repo(org, "inside-model", visibility="internal")
    org_private = site.repo(org, "board-model", visibility="private")
    seen = {}
    for who, browser in (("anonymous", site.browser()), ("outsider", site.browser(outsider)),
                         ("member", site.browser(member)), ("owner", site.browser(owner))):
        page = browser.get("/models")
        assert page.status_code == 200
        seen[who] = (set(_listed(page.text)), _total(page.text))
    assert seen["anonymous"] == seen["outsider"] == ({public}, 1)
    assert seen["member"] == ({public, internal}, 2)  # a read member sees internal, not private
    assert seen["owner"] == ({public, private, internal, org_private}, 4)
    token = site.browser().get("/models", headers={"Authorization": f"Bearer {site.token(outsider, 'read')}"})
    assert set(_listed(token.text)) == {public}
    assert "secret-model" not in site.browser(outsider).get("/models?search=secret").text


def test_search_author_sort_and_places(site: Site) -> None:
    alice, bob = site.user("alice"), site.user("bob")
    first = site.repo(alice, "zeta", files={"README.md": b"# z"})
    second = site.repo(alice, "alpha", gated="manual")
    third = site.repo(bob, "alphabet", policy=STAGED)
    browser = site.browser()
    by_date = _listed(browser.get("/models").text)
    assert by_date == [third, second, first]  # last modified first
    assert _listed(browser.get("/models?sort=name").text) == [second, first, third]
    assert _listed(browser.get(f"/models?author={alice}&sort=name").text) == [second, first]
    assert _listed(browser.get("/models?search=ALPHA&sort=name").text) == [second, third]
    assert _listed(browser.get("/models?search=%25").text) == []  # a LIKE wildcard is a plain character
    page = browser.get("/models?sort=name").text
    assert 'class="place place-gated"' in page and 'class="place place-staged"' in page
    assert 'class="place place-open"' in page
    assert browser.get("/models?sort=bogus").status_code == 200
    assert browser.get("/models?p=0").status_code == 400


def test_home_page_has_the_intro_and_the_list(site: Site) -> None:
    owner = site.user()
    public = site.repo(owner)
    site.repo(owner, "hidden-one", visibility="private")
    page = site.browser().get("/")
    assert page.status_code == 200
    assert "A self-hosted model release server" in page.text and 'href="/docs"' in page.text
    assert _listed(page.text) == [public] and "hidden-one" not in page.text


def test_pages_of_the_list(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(list_pages, "LIST_PAGE", 2)
    owner = site.user()
    made = [site.repo(owner, f"m{i}") for i in range(5)]
    browser = site.browser()
    one, three = browser.get("/models?sort=name"), browser.get("/models?sort=name&p=3")
    assert _listed(one.text) == made[:2] and _listed(three.text) == made[4:]
    assert 'href="/models?sort=name&amp;p=2" rel="next"' in one.text and "Page 1 of 3" in one.text
    assert 'href="/models?sort=name&amp;p=2" rel="prev"' in three.text and 'rel="next"' not in three.text
    assert _total(three.text) == 5
    assert _listed(browser.get("/models?p=9").text) == []


def _populate(site: Site, owner: str, outsider: str, start: int, count: int) -> None:
    """Releases of every kind: open, gated (one with the viewer's request), staged, private, hosted."""
    for i in range(start, start + count):
        kind = i % 4
        repo_id = site.repo(owner, f"r{i:02d}", gated="auto" if kind == 1 else None,
                            policy=STAGED if kind == 2 else None, visibility="private" if kind == 3 else "public")
        namespace, name = repo_id.split("/")
        with site.services.db.session() as session:
            repo = repos.get_repo(session, namespace, name)
            if kind == 0:
                gateway_service.attach(session, repo, backend_url="http://127.0.0.1:9/v1", engine_model=None,
                                       api_key_env=None, hosted_only=False, actor=owner)
            session.commit()
        if kind == 1:
            browser = site.browser(outsider)
            gate = browser.get(f"/{repo_id}/access")
            browser.post(f"/{repo_id}/access", data={"csrf_token": csrf(gate.text)})


def test_the_list_runs_the_same_number_of_queries_for_3_and_15_releases(site: Site) -> None:
    owner, outsider = site.user(), site.user()
    _populate(site, owner, outsider, 0, 3)
    viewers = {"anonymous": site.browser(), "outsider": site.browser(outsider), "owner": site.browser(owner)}
    few = {}
    for who, browser in viewers.items():
        browser.get("/models")  # warm: compiled policies and the like
        with counted(site) as statements:
            page = browser.get("/models")
        few[who] = (len(statements), _total(page.text))
    _populate(site, owner, outsider, 3, 12)
    many = {}
    for who, browser in viewers.items():
        browser.get("/models")
        with counted(site) as statements:
            page = browser.get("/models")
        many[who] = (len(statements), _total(page.text))
        assert 'class="place place-api"' in page.text
    for who in viewers:
        assert many[who][0] == few[who][0], (who, few[who], many[who])
    assert many["owner"][0] <= 6  # the session, the count, the page, the grants, the hosted flags
    assert few["anonymous"][1] == 3 and many["anonymous"][1] == 12  # private ones never counted
    assert few["owner"][1] == 3 and many["owner"][1] == 15
    assert many["outsider"][1] == many["anonymous"][1]
