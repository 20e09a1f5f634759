"""The settings page: the whole policy for the team, edited (as YAML, or visibility and gate) by admins."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from releasehub.access import service as access_service
from releasehub.db import utcnow
from releasehub.repos import service as repos
from releasehub.webhooks.models import Webhook, WebhookDelivery
from tests.web.conftest import Site, csrf

POLICY = {
    "gated": "manual",
    "tiers": [{"name": "public", "components": ["documentation"]},
              {"name": "researcher", "components": ["weights", "documentation"], "grant_days": 90}],
    "stages": [{"name": "big", "files": ["big/*.safetensors"],
                "releases": [{"audience": "everyone", "at": "2099-01-01"},
                             {"audience": "researcher", "at": "2020-06-01"}]}],
    "eligibility": {"denied_countries": ["KP"]},
}


def _team(site: Site, visibility: str = "public") -> dict[str, str]:
    """An organisation's repo and its people: the owner (admin), a writer, a reader, an outsider."""
    owner, writer, reader, outsider = site.user(), site.user(), site.user(), site.user()
    org = site.org(f"o{uuid.uuid4().hex[:6]}", owner)
    site.member(org, writer, "write")
    site.member(org, reader, "read")
    repo_id = site.repo(org, visibility=visibility, policy=POLICY)
    return {"repo": repo_id, "owner": owner, "writer": writer, "reader": reader, "outsider": outsider}


def _stored(site: Site, repo_id: str) -> dict[str, Any]:
    namespace, name = repo_id.split("/")
    with site.services.db.session() as session:
        return access_service.effective_doc(repos.get_repo(session, namespace, name))


def _textarea(html: str) -> str:
    match = re.search(r'<textarea id="policy" name="policy"[^>]*>(.*?)</textarea>', html, re.S)
    assert match is not None, "no policy textarea"
    import html as html_lib

    return html_lib.unescape(match.group(1))


def test_outsider_and_reader_are_refused(site: Site) -> None:
    team = _team(site)
    for who in ("outsider", "reader"):
        page = site.browser(team[who]).get(f"/{team['repo']}/settings")
        assert page.status_code == 403, who
        assert "big/*.safetensors" not in page.text and "researcher" not in page.text
    anonymous = site.browser().get(f"/{team['repo']}/settings")
    assert anonymous.status_code in (401, 403) and "big/*.safetensors" not in anonymous.text


def test_outsider_of_a_private_repo_gets_the_missing_page(site: Site) -> None:
    team = _team(site, visibility="private")
    browser = site.browser(team["outsider"])
    namespace = team["repo"].split("/")[0]
    shown = browser.get(f"/{team['repo']}/settings")
    missing = browser.get(f"/{namespace}/no-such-repo/settings")
    assert shown.status_code == missing.status_code == 404
    assert shown.text.replace(team["repo"], "X") == missing.text.replace(f"{namespace}/no-such-repo", "X")


def test_writer_sees_the_policy_but_may_not_change_it(site: Site) -> None:
    team = _team(site)
    browser = site.browser(team["writer"])
    page = browser.get(f"/{team['repo']}/settings")
    assert page.status_code == 200
    assert "big/*.safetensors" in page.text and "researcher" in page.text
    assert "<textarea" not in page.text and "Save visibility and gate" not in page.text
    assert "Webhooks" not in page.text  # webhooks are the admin's, as GET /webhooks is
    before = _stored(site, team["repo"])
    answer = browser.post(f"/{team['repo']}/settings/policy", data={"csrf_token": csrf(page.text),
                                                                    "policy": "gated: auto\n"})
    assert answer.status_code == 403
    answer = browser.post(f"/{team['repo']}/settings/visibility", data={
        "csrf_token": csrf(page.text), "visibility": "private", "gated": "off"})
    assert answer.status_code == 403
    assert _stored(site, team["repo"]) == before


def test_page_shows_tiers_timeline_and_eligibility(site: Site) -> None:
    team = _team(site)
    page = site.browser(team["owner"]).get(f"/{team['repo']}/settings")
    assert page.status_code == 200
    text = page.text
    # Releases in time order, the past one marked released, the future one scheduled.
    past, future = text.index("2020-06-01"), text.index("2099-01-01")
    assert past < future
    assert re.search(r'class="past">\s*<td>2020-06-01.*?released', text, re.S)
    assert re.search(r'class="future">\s*<td>2099-01-01.*?scheduled', text, re.S)
    assert "KP" in text and "Denied countries" in text
    assert re.search(r"<th scope=\"row\">researcher</th>\s*<td>weights, documentation</td>", text)
    assert '<label for="policy">' in text


def test_admin_adds_a_tier_as_yaml(site: Site) -> None:
    team = _team(site)
    browser = site.browser(team["owner"])
    page = browser.get(f"/{team['repo']}/settings")
    typed = _textarea(page.text)
    assert "researcher" in typed and typed.startswith("visibility: public\ngated: manual\n")
    before = _stored(site, team["repo"])
    same = browser.post(f"/{team['repo']}/settings/policy", data={"csrf_token": csrf(page.text), "policy": typed},
                        follow_redirects=False)
    assert same.status_code == 303 and _stored(site, team["repo"]) == before  # the page's YAML is the policy
    typed = typed.replace("tiers:\n", "tiers:\n- name: auditor\n  components:\n  - '*'\n", 1)
    answer = browser.post(f"/{team['repo']}/settings/policy", data={"csrf_token": csrf(page.text), "policy": typed},
                          follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].endswith("/settings?notice=policy")
    shown = browser.get(answer.headers["location"])
    assert "The policy was saved." in shown.text
    assert '<th scope="row">auditor</th>' in shown.text
    stored = _stored(site, team["repo"])
    assert [tier["name"] for tier in stored["tiers"]] == ["auditor", "public", "researcher"]
    assert stored["stages"] == _stored_stages_before(POLICY)


def _stored_stages_before(policy: dict[str, Any]) -> list[dict[str, Any]]:
    stage = policy["stages"][0]
    return [{"name": stage["name"], "files": stage["files"],
             "releases": [{"audience": "everyone", "at": "2099-01-01T00:00:00Z"},
                          {"audience": "researcher", "at": "2020-06-01T00:00:00Z"}]}]


def test_bad_yaml_is_shown_in_place_and_changes_nothing(site: Site) -> None:
    team = _team(site)
    browser = site.browser(team["owner"])
    page = browser.get(f"/{team['repo']}/settings")
    before = _stored(site, team["repo"])
    bad = "gated: auto\ntiers: [unclosed\n"
    answer = browser.post(f"/{team['repo']}/settings/policy", data={"csrf_token": csrf(page.text), "policy": bad})
    assert answer.status_code == 400
    assert re.search(r'<p class="alert" role="alert">YAML syntax error at line \d+, column \d+', answer.text)
    assert _textarea(answer.text) == bad
    listed = browser.post(f"/{team['repo']}/settings/policy", data={"csrf_token": csrf(page.text),
                                                                    "policy": "- gated: auto\n"})
    assert listed.status_code == 400 and "line 1, column 1 is not a mapping" in listed.text
    aliased = "a: &x [1]\nb: *x\n"
    refused = browser.post(f"/{team['repo']}/settings/policy", data={"csrf_token": csrf(page.text),
                                                                     "policy": aliased})
    assert refused.status_code == 400 and "aliases" in refused.text and "line 2, column 4" in refused.text
    assert _stored(site, team["repo"]) == before


def test_unsatisfiable_policy_is_shown_in_place_and_changes_nothing(site: Site) -> None:
    team = _team(site)
    browser = site.browser(team["owner"])
    page = browser.get(f"/{team['repo']}/settings")
    before = _stored(site, team["repo"])
    for typed, expected in (
        ("gated: auto\neligibility:\n  min_age: 18\n", "min_age"),
        ("gated: auto\nstages:\n- name: s\n  files: ['*.bin']\n  releases:\n  - {audience: nobody, at: now}\n",
         "unknown audience &#39;nobody&#39;"),
    ):
        answer = browser.post(f"/{team['repo']}/settings/policy", data={"csrf_token": csrf(page.text),
                                                                        "policy": typed})
        assert answer.status_code == 400, answer.text
        alert = re.search(r'<p class="alert" role="alert">(.*?)</p>', answer.text, re.S)
        assert alert is not None and "Invalid policy" in alert.group(1) and expected in alert.group(1)
        assert _textarea(answer.text) == typed
        assert 'gated: manual' not in _textarea(answer.text)
    assert _stored(site, team["repo"]) == before


def test_policy_post_without_csrf_is_refused(site: Site) -> None:
    team = _team(site)
    browser = site.browser(team["owner"])
    before = _stored(site, team["repo"])
    answer = browser.post(f"/{team['repo']}/settings/policy", data={"policy": "gated: auto\n"})
    assert answer.status_code == 403
    answer = browser.post(f"/{team['repo']}/settings/visibility", data={"visibility": "private", "gated": "off"})
    assert answer.status_code == 403
    assert _stored(site, team["repo"]) == before


def test_admin_changes_visibility_and_gate(site: Site) -> None:
    team = _team(site)
    browser = site.browser(team["owner"])
    page = browser.get(f"/{team['repo']}/settings")
    answer = browser.post(f"/{team['repo']}/settings/visibility", data={
        "csrf_token": csrf(page.text), "visibility": "internal", "gated": "off"}, follow_redirects=False)
    assert answer.status_code == 303
    stored = _stored(site, team["repo"])
    assert stored["visibility"] == "internal" and stored["gated"] is False
    assert stored["tiers"] == _stored_tiers()
    assert "Visibility and gate were saved." in browser.get(answer.headers["location"]).text


def _stored_tiers() -> list[dict[str, Any]]:
    return [{"name": "public", "components": ["documentation"]},
            {"name": "researcher", "components": ["weights", "documentation"], "grant_days": 90}]


def test_internal_visibility_of_a_user_repo_is_shown_in_place(site: Site) -> None:
    owner = site.user()
    repo_id = site.repo(owner)
    browser = site.browser(owner)
    page = browser.get(f"/{repo_id}/settings")
    answer = browser.post(f"/{repo_id}/settings/visibility", data={
        "csrf_token": csrf(page.text), "visibility": "internal", "gated": "manual"})
    assert answer.status_code == 400
    assert re.search(r'<p class="alert" role="alert">`internal` means every member', answer.text)
    assert _stored(site, repo_id) == {"visibility": "public", "gated": False}
    junk = browser.post(f"/{repo_id}/settings/visibility", data={
        "csrf_token": csrf(page.text), "visibility": "public", "gated": "sometimes"})
    assert junk.status_code == 400 and "Choose the gate" in junk.text


def test_admin_sees_the_webhooks_with_their_last_delivery(site: Site) -> None:
    owner = site.user()
    repo_id = site.repo(owner)
    namespace, name = repo_id.split("/")
    with site.services.db.session() as session:
        repo = repos.get_repo(session, namespace, name)
        hook = Webhook(repo_id=repo.id, url="https://hooks.example.org/in", secret="s" * 32,
                       events=["repo.update"], created_by=owner, created_at=utcnow(), active=True)
        session.add(hook)
        session.flush()
        session.add(WebhookDelivery(id=str(uuid.uuid4()), webhook_id=hook.id, event="repo.update", payload={},
                                    status="failed", attempts=3, response_status=502,
                                    created_at=utcnow() - timedelta(minutes=5)))
        session.commit()
    page = site.browser(owner).get(f"/{repo_id}/settings")
    assert page.status_code == 200
    assert "https://hooks.example.org/in" in page.text and "s" * 32 not in page.text
    assert "repo.update: failed (HTTP 502)" in page.text
    assert f"releasehub webhooks add {repo_id}" in page.text
