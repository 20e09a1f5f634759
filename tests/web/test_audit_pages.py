"""The usage page (hosted API usage, for the releasing team) and the audit page and CSV (repo admins)."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import datetime, timedelta, timezone

from releasehub.auditlog import log as audit_log
from releasehub.db import utcnow
from releasehub.gateway import metering
from releasehub.gateway import service as gateway_service
from tests.web.conftest import Site

README = b"---\nlicense: mit\n---\n# A model\n"


def _main(html: str) -> str:
    return html[html.find("<main"):html.find("</main>")]


def _org_repo(site: Site, visibility: str = "public") -> tuple[str, str, str, str]:
    """An org repo, its admin (the org's owner) and a write-role member."""
    owner, writer = site.user(), site.user()
    org = site.org(f"lab{uuid.uuid4().hex[:6]}", owner)
    site.member(org, writer, "write")
    return site.repo(org, visibility=visibility), owner, writer, org


def _host(site: Site, repo_id: str, owner: str) -> None:
    with site.services.db.session() as session:
        repo = gateway_service.load_repo(session, repo_id)
        gateway_service.attach(session, repo, backend_url="http://127.0.0.1:9/v1", engine_model=None,
                               api_key_env=None, hosted_only=False, actor=owner)


def _calls(site: Site, repo_id: str, user: str, owner: str, per_day: dict[int, tuple[int, int, int]]) -> str:
    """A key for `user`, and metered calls `days ago: (count, prompt tokens, completion tokens each)`."""
    with site.services.db.session() as session:
        new = gateway_service.create_key(session, user, [repo_id], gateway_service.DEFAULT_TIER, actor=owner)
        repo = gateway_service.load_repo(session, repo_id)
        now = utcnow()
        calls = [metering.Call(key_pk=new.key.id, key_id=new.key.key_id, user=user, repo_pk=repo.id, repo=repo_id,
                               endpoint="chat", status=200, outcome="ok", prompt_tokens=tokens_in,
                               completion_tokens=tokens_out, latency_ms=5.0, stream=False,
                               at=now - timedelta(days=ago))
                 for ago, (count, tokens_in, tokens_out) in per_day.items() for _ in range(count)]
        metering.write_calls(session, calls)
        return new.key.key_id


def _day_row(html: str, day: str) -> list[str]:
    match = re.search(rf'<tr><th scope="row">{day}</th>(.*?)</tr>', html)
    assert match is not None, f"no row for {day}"
    return re.findall(r'<td class="num">([^<]*)</td>', match.group(1))


def test_usage_per_day_for_a_writer_and_per_key_for_an_admin(site: Site) -> None:
    repo_id, owner, writer, _ = _org_repo(site)
    caller = site.user()
    _host(site, repo_id, owner)
    key_id = _calls(site, repo_id, caller, owner, {0: (3, 10, 5), 2: (1, 7, 1), 45: (4, 1, 1)})
    page = site.browser(writer).get(f"/{repo_id}/usage")
    assert page.status_code == 200, page.text
    html = _main(page.text)
    today = utcnow().date()
    assert _day_row(html, today.isoformat()) == ["3", "0", "0", "30", "15"]
    assert _day_row(html, (today - timedelta(days=2)).isoformat()) == ["1", "0", "0", "7", "1"]
    assert _day_row(html, (today - timedelta(days=1)).isoformat()) == ["0", "0", "0", "0", "0"]
    assert (today - timedelta(days=45)).isoformat() not in html  # outside the 30 days
    # Another user's key is for the repo's admins (as /api/gateway/usage): the writer sees only their own.
    assert key_id not in html and "Your own keys only" in html
    html = _main(site.browser(owner).get(f"/{repo_id}/usage").text)
    key_row = re.search(rf"<code>{key_id}</code>.*?</tr>", html)
    assert key_row is not None
    assert f"<td>{caller}</td><td>default</td><td>active</td>" in key_row.group(0)
    assert re.findall(r'<td class="num">([^<]*)</td>', key_row.group(0)) == ["4", "0", "0", "37", "16"]
    chart = html[html.find("<svg"):html.find("</svg>") + 6]
    assert 'role="img"' in chart and "<title" in chart and chart.count("<rect") == 30
    assert "style" not in chart
    assert f"{today.isoformat()}: 3 requests" in chart


def test_usage_of_a_release_that_is_not_hosted_says_so(site: Site) -> None:
    owner = site.user()
    repo_id = site.repo(owner, files={"README.md": README})
    page = site.browser(owner).get(f"/{repo_id}/usage")
    assert page.status_code == 200
    assert "not served through the API" in page.text and "releasehub hosted attach" in page.text
    assert "<svg" not in page.text


def test_usage_is_refused_to_outsiders(site: Site) -> None:
    public, owner, _, org = _org_repo(site)
    private = site.repo(org, visibility="private")
    for repo_id in (public, private):
        _host(site, repo_id, owner)
    reader, outsider = site.user(), site.user()
    site.member(org, reader, "read")
    for who, status in ((outsider, 403), (reader, 403), (None, 401)):
        refused = site.browser(who).get(f"/{public}/usage")
        assert refused.status_code == status, (who, refused.status_code)
        assert "Requests" not in _main(refused.text)
    browser = site.browser(outsider)
    hidden, missing = browser.get(f"/{private}/usage"), browser.get(f"/{org}/no-such-repo/usage")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text.replace(private, "X") == missing.text.replace(f"{org}/no-such-repo", "X")


def test_api_downloads_appear_in_the_file_table_and_the_csv(site: Site) -> None:
    owner, downloader = site.user(), site.user()
    repo_id = site.repo(owner, files={"README.md": README, "config.json": b"{}"})
    headers = {"authorization": f"Bearer {site.token(downloader, 'read')}"}
    for _ in range(2):
        assert site.client.get(f"/{repo_id}/resolve/main/README.md", headers=headers).status_code == 200
    assert site.client.get(f"/{repo_id}/resolve/main/README.md").status_code == 200
    site.client.app.state.download_recorder.flush()

    page = site.browser(owner).get(f"/{repo_id}/audit")
    assert page.status_code == 200, page.text
    html = _main(page.text)
    table = html[html.find('id="downloads-heading"'):]
    row = re.search(r"<code>README.md</code>.*?</tr>", table)
    assert row is not None
    assert re.findall(r'<td class="num">([^<]*)</td>', row.group(0)) == ["3", f"{3 * len(README)} B", "2"]
    assert "config.json" not in table
    assert "releasehub audit verify" in html

    exported = site.browser(owner).get(f"/{repo_id}/audit.csv?action=file.downloaded")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.headers["content-disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["action"] for r in rows] == ["file.downloaded"] * 3
    assert sorted(r["actor"] for r in rows) == ["", downloader, downloader]
    assert {r["path"] for r in rows} == {"README.md"}
    with site.services.db.session() as session:
        hashes = {e["seq"]: e["hash"] for e in audit_log.iter_events(session, repo=repo_id)}
    assert all(hashes[int(r["seq"])] == r["hash"] for r in rows)
    assert all(hashes[int(r["seq"])][:12] in html for r in rows)  # the hash prefix column


def _events(site: Site, repo_id: str) -> None:
    old = datetime(2024, 3, 1, 12, tzinfo=timezone.utc)
    with site.services.db.session() as session:
        audit_log.record_many(session, [
            audit_log.EventData("file.downloaded", actor="alice", repo=repo_id, path="a.txt", bytes=5, at=old),
            audit_log.EventData("file.downloaded", actor="bob", repo=repo_id, path="b.txt", bytes=7,
                                at=old + timedelta(days=10)),
            audit_log.EventData("repo.settings", actor="alice", repo=repo_id, details={"private": True},
                                at=old + timedelta(days=20)),
            audit_log.EventData("file.downloaded", actor="carol", repo="someone/else", path="c.txt", at=old),
        ])


def test_filters_narrow_the_rows_of_the_page_and_the_csv(site: Site) -> None:
    owner = site.user()
    repo_id = site.repo(owner)
    _events(site, repo_id)
    browser = site.browser(owner)

    def shown(query: str) -> list[str]:
        page = browser.get(f"/{repo_id}/audit?{query}")
        assert page.status_code == 200, page.text
        body = _main(page.text)
        events = body[body.find('<table class="data audit">'):body.find('id="downloads-heading"')]
        return re.findall(r'<tr><td class="num">\d+</td><td>[^<]*</td><td><code>([^<]+)</code></td><td>([^<]*)</td>',
                          events)

    everything = shown("")
    assert ("file.downloaded", "alice") in everything and ("repo.settings", "alice") in everything
    assert ("file.downloaded", "carol") not in everything  # another repo's event
    assert shown("action=file.downloaded") == [("file.downloaded", "bob"), ("file.downloaded", "alice")]
    assert shown("actor=alice") == [("repo.settings", "alice"), ("file.downloaded", "alice")]
    assert shown("since=2024-03-05&until=2024-03-11") == [("file.downloaded", "bob")]
    assert shown("until=2024-03-01&actor=alice") == [("file.downloaded", "alice")]  # until is inclusive
    page = browser.get(f"/{repo_id}/audit?since=2024-03-05")
    options = re.findall(r'<option value="([^"]+)"', page.text)
    assert options == ["file.downloaded", "repo.settings"]  # the actions present in this repo's log
    downloads = _main(page.text)[_main(page.text).find('id="downloads-heading"'):]
    assert "b.txt" in downloads and "a.txt" not in downloads and "since 2024-03-05" in downloads
    assert 'href="/{}/audit.csv?since=2024-03-05"'.format(repo_id) in page.text

    exported = browser.get(f"/{repo_id}/audit.csv?actor=alice&until=2024-03-15")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["action"], r["path"]) for r in rows] == [("file.downloaded", "a.txt")]


def test_bad_filters_are_a_400_with_the_error_in_place(site: Site) -> None:
    owner = site.user()
    repo_id = site.repo(owner)
    _events(site, repo_id)
    browser = site.browser(owner)
    for query, message in (("since=yesterday", "is not a date"), ("until=2024-02-30", "is not a date"),
                           ("since=2024-03-10&until=2024-03-01", "is after until"), ("page=0", "not a page")):
        page = browser.get(f"/{repo_id}/audit?{query}")
        assert page.status_code == 400, query
        alert = re.search(r'<p class="alert" role="alert">([^<]*)</p>', page.text)
        assert alert is not None and message in alert.group(1), query
        assert 'id="audit-since"' in page.text  # the form stays, to correct it
        assert "alice" not in _main(page.text)
    assert browser.get(f"/{repo_id}/audit.csv?since=nope").status_code == 400


def test_pages_of_100_newest_first(site: Site) -> None:
    owner = site.user()
    repo_id = site.repo(owner)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with site.services.db.session() as session:
        audit_log.record_many(session, [audit_log.EventData("test.tick", actor="bot", repo=repo_id,
                                                            details={"n": n}, at=start + timedelta(minutes=n))
                                        for n in range(150)])
    browser = site.browser(owner)
    first = _main(browser.get(f"/{repo_id}/audit?action=test.tick").text)
    assert first.count("&#34;n&#34;: ") == 100
    assert 0 <= first.find("&#34;n&#34;: 149") < first.find("&#34;n&#34;: 50}")
    assert "&#34;n&#34;: 49}" not in first
    assert 'href="/{}/audit?action=test.tick&amp;page=2"'.format(repo_id) in first
    second = _main(browser.get(f"/{repo_id}/audit?action=test.tick&page=2").text)
    assert second.count("&#34;n&#34;: ") == 50 and "&#34;n&#34;: 0}" in second
    assert "Newer events" in second and "Older events" not in second


def test_only_admins_see_the_audit_page_and_csv(site: Site) -> None:
    public, owner, writer, org = _org_repo(site)
    private = site.repo(org, visibility="private")
    for repo_id in (public, private):
        _events(site, repo_id)
    assert site.browser(owner).get(f"/{public}/audit").status_code == 200
    for who in (writer, site.user()):
        browser = site.browser(who)
        for url in (f"/{public}/audit", f"/{public}/audit.csv"):
            refused = browser.get(url)
            assert refused.status_code == 403, (url, refused.status_code)
            assert "alice" not in refused.text and "text/html" in refused.headers["content-type"]
    assert site.browser(writer).get(f"/{private}/audit.csv").status_code == 403  # the team sees the repo
    browser = site.browser(site.user())
    for suffix in ("audit", "audit.csv"):
        hidden, missing = browser.get(f"/{private}/{suffix}"), browser.get(f"/{org}/no-such-repo/{suffix}")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.text.replace(private, "X") == missing.text.replace(f"{org}/no-such-repo", "X")
    anonymous = site.browser().get(f"/{public}/audit.csv")
    assert anonymous.status_code == 401 and "alice" not in anonymous.text


def test_the_audit_tab_shows_for_admins_only(site: Site) -> None:
    public, owner, writer, _ = _org_repo(site)
    assert f'href="/{public}/audit"' in site.browser(owner).get(f"/{public}").text
    assert f'href="/{public}/audit"' not in site.browser(writer).get(f"/{public}").text
