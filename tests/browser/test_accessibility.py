"""axe-core on every main page, in Chromium: no violation of serious or critical impact.

Each page is audited as the person who sees most of it: the gate as a signed-in visitor who has
not asked yet (the form), the review page as the owner with a pending request, and so on.
axe is injected into a context that bypasses the pages' CSP (which rightly forbids scripts);
nothing else in these tests bypasses it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import CommitOperationAdd

from tests.browser.conftest import GATED_CARD, Person, new_page, person, release, sign_in
from tests.conftest import ServerProcess


# (name, who looks, path); {open} and {gated} are the two releases below.
PAGES = [
    ("home", "anonymous", "/"),
    ("models", "anonymous", "/models"),
    ("models-search", "requester", "/models?search=m-"),
    ("login", "anonymous", "/login"),
    ("login-error", "anonymous", "/login?next=/missing"),
    ("not-found", "anonymous", "/nobody/nothing"),
    ("model", "anonymous", "/{open}"),
    ("gated-model", "requester", "/{gated}"),
    ("gate-form", "visitor", "/{gated}/access"),
    ("gate-pending", "requester", "/{gated}/access"),
    ("tree", "anonymous", "/{open}/tree/main"),
    ("blob", "anonymous", "/{open}/blob/main/config.json"),
    ("commits", "anonymous", "/{open}/commits/main"),
    ("access-profile", "anonymous", "/{open}/access-profile"),
    ("compare", "anonymous", "/compare?models={open},{gated}"),
    ("review", "owner", "/{gated}/settings/access-requests"),
    ("repo-settings", "owner", "/{gated}/settings"),
    ("audit", "owner", "/{gated}/audit"),
    ("tokens", "owner", "/settings/tokens"),
    ("keys", "owner", "/settings/keys"),
]
SEVERE = ("serious", "critical")


def tiny_model(tmp: Path) -> list[CommitOperationAdd]:
    from releasehub.demo import build_tiny_model

    return [CommitOperationAdd(path.name, io.BytesIO(path.read_bytes())) for path in build_tiny_model(tmp)]


@pytest.fixture(scope="module")
def site(browser: Any, web_server: ServerProcess, axe_source: str,
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    owner, requester, visitor = person(web_server), person(web_server), person(web_server)
    api = owner.api(web_server)
    open_repo = f"{owner.name}/tiny-open"
    api.create_repo(open_repo)
    api.create_commit(open_repo, tiny_model(tmp_path_factory.mktemp("tiny")), commit_message="Add the tiny model")
    gated = release(web_server, owner, GATED_CARD, gated="manual")
    ask(web_server, requester, gated)
    pages = {"anonymous": new_page(browser, web_server, bypass_csp=True)}
    for role, who in (("owner", owner), ("requester", requester), ("visitor", visitor)):
        pages[role] = new_page(browser, web_server, bypass_csp=True)
        sign_in(pages[role], who, f"/{gated}")
    return {"pages": pages, "open": open_repo, "gated": gated, "axe": axe_source}


def ask(server: ServerProcess, who: Person, repo_id: str) -> None:
    """A pending request, sent through the API as the CLI does."""
    terms = httpx.get(f"{server.url}/api/models/{repo_id}/access-terms").json()
    answer = httpx.post(f"{server.url}/api/models/{repo_id}/access-request",
                        headers={"Authorization": f"Bearer {who.token}"},
                        json={"fields": {"Company": "Acme", "Country": "Norway",
                                         "I will use it for research only": True},
                              "acceptLicense": True, "licenseSha256": terms["license"]["sha256"]})
    assert answer.status_code == 200 and answer.json()["state"] == "pending", answer.text


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"{violation['impact']}: {violation['id']}: {violation['help']} ({violation['helpUrl']})")
        for node in violation["nodes"][:5]:
            lines.append(f"    {' '.join(map(str, node['target']))}: {node['html'][:160]}")
            if node.get("failureSummary"):
                lines.append("      " + node["failureSummary"].replace("\n", "\n      "))
    return "\n".join(lines)


@pytest.mark.parametrize(("name", "who", "path"), PAGES, ids=[name for name, _, _ in PAGES])
def test_page_has_no_serious_accessibility_violation(site: dict[str, Any], name: str, who: str, path: str) -> None:
    page = site["pages"][who]
    target = path.format(open=site["open"], gated=site["gated"])
    response = page.goto(target)
    assert response is not None
    expected = 404 if name == "not-found" else 200
    assert response.status == expected, f"{target} answered {response.status}"
    if name == "login-error":
        page.get_by_label("User name").fill("nobody")
        page.get_by_label("Password", exact=True).fill("not the password")
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        assert page.get_by_role("alert").count() == 1
    page.add_script_tag(content=site["axe"])
    results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    severe = [v for v in results["violations"] if v["impact"] in SEVERE]
    minor = [v for v in results["violations"] if v["impact"] not in SEVERE]
    if minor:
        print(f"{name} ({target}), minor:\n{describe(minor)}")
    assert not severe, f"{name} ({target}):\n{describe(severe)}"
