"""The gate in a real browser: ask for access, the owner reviews, the Hub client then downloads.

Also: a rejection's reason reaches the requester, who may ask again, and a form sent without its
CSRF token is refused and records nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import GatedRepoError

from tests.browser.conftest import GATED_CARD, Person, expect, new_page, person, release, sign_in, signed_in_page
from tests.conftest import ServerProcess


LICENSE_LABEL = re.compile(r"^I have read and accept the license")


@pytest.fixture
def owner(web_server: ServerProcess) -> Person:
    return person(web_server)


@pytest.fixture
def requester(web_server: ServerProcess) -> Person:
    return person(web_server)


@pytest.fixture
def gated(web_server: ServerProcess, owner: Person) -> str:
    return release(web_server, owner, GATED_CARD, gated="manual")


def fill_gate(page: Any, company: str) -> None:
    page.get_by_label("Company").fill(company)
    page.get_by_label("Country").select_option("Norway")
    page.get_by_label("I will use it for research only").check()
    page.get_by_label(LICENSE_LABEL).check()


def submit_gate(page: Any) -> Any:
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Send my request").click()
    return navigation.value


def request_through_the_model_page(page: Any, repo_id: str, company: str) -> None:
    if not page.url.endswith(f"/{repo_id}"):
        page.goto(f"/{repo_id}")
    with page.expect_navigation():
        page.get_by_role("link", name="Request access").click()
    assert page.url.endswith(f"/{repo_id}/access")
    fill_gate(page, company)
    response = submit_gate(page)
    assert response.ok and page.url.endswith(f"/{repo_id}/access")
    expect(page.get_by_role("status")).to_contain_text("pending")
    expect(page.get_by_role("button", name="Send my request")).to_have_count(0)


def review_page(page: Any, repo_id: str) -> None:
    response = page.goto(f"/{repo_id}/settings/access-requests")
    assert response is not None and response.status == 200, f"review page answered {response and response.status}"


def download(server: ServerProcess, repo_id: str, who: Person, cache: Path) -> str:
    return hf_hub_download(repo_id, "model.safetensors", endpoint=server.url, token=who.token,
                           cache_dir=str(cache))


def test_request_review_accept_then_download(browser: Any, web_server: ServerProcess, owner: Person,
                                             requester: Person, gated: str, tmp_path: Path) -> None:
    page = signed_in_page(browser, web_server, requester, f"/{gated}")
    request_through_the_model_page(page, gated, "Acme Research")
    with pytest.raises(GatedRepoError):
        download(web_server, gated, requester, tmp_path / "before")

    review = signed_in_page(browser, web_server, owner, f"/{gated}")
    review_page(review, gated)
    expect(review.get_by_text("Acme Research")).to_be_visible()  # the reviewer sees the answers
    accept = review.get_by_role("form", name=f"Accept {requester.name}")
    with review.expect_navigation() as navigation:
        accept.get_by_role("button", name="Accept").click()
    assert navigation.value.ok
    expect(review.get_by_role("form", name=f"Accept {requester.name}")).to_have_count(0)

    assert Path(download(web_server, gated, requester, tmp_path / "after")).stat().st_size > 0
    assert [r.username for r in owner.api(web_server).list_accepted_access_requests(gated)] == [requester.name]
    page.goto(f"/{gated}")
    expect(page.get_by_text("You can download this model")).to_be_visible()


def test_rejection_reason_is_shown_and_the_requester_asks_again(browser: Any, web_server: ServerProcess,
                                                                 owner: Person, requester: Person,
                                                                 gated: str, tmp_path: Path) -> None:
    page = signed_in_page(browser, web_server, requester, f"/{gated}")
    request_through_the_model_page(page, gated, "Nobody Ltd")

    review = signed_in_page(browser, web_server, owner, f"/{gated}")
    review_page(review, gated)
    reject = review.get_by_role("form", name=f"Reject {requester.name}")
    reject.get_by_label(re.compile("reason", re.IGNORECASE)).fill("We could not confirm Nobody Ltd exists")
    with review.expect_navigation() as navigation:
        reject.get_by_role("button", name="Reject").click()
    assert navigation.value.ok
    assert [r.username for r in owner.api(web_server).list_rejected_access_requests(gated)] == [requester.name]

    page.goto(f"/{gated}/access")
    expect(page.get_by_role("status")).to_contain_text("rejected")
    expect(page.get_by_role("status")).to_contain_text("We could not confirm Nobody Ltd exists")
    with pytest.raises(GatedRepoError):
        download(web_server, gated, requester, tmp_path / "rejected")
    # The form is back: correct it and ask again.
    fill_gate(page, "Somebody GmbH")
    assert submit_gate(page).ok
    expect(page.get_by_role("status")).to_contain_text("pending")
    pending = owner.api(web_server).list_pending_access_requests(gated)
    assert [(r.username, (r.fields or {}).get("Company")) for r in pending] == [(requester.name, "Somebody GmbH")]


def test_a_form_without_its_csrf_token_is_refused(browser: Any, web_server: ServerProcess, owner: Person,
                                                  requester: Person, gated: str) -> None:
    page = signed_in_page(browser, web_server, requester, next_path=f"/{gated}/access")
    fill_gate(page, "Forged Inc")
    # The browser sends the same form with the token taken out, as a cross-site page would have to.
    removed = page.evaluate("""() => {
        const inputs = document.querySelectorAll('form input[name="csrf_token"]');
        inputs.forEach(input => input.remove());
        return inputs.length;
    }""")
    assert removed >= 1
    response = submit_gate(page)
    assert response.status == 403
    expect(page.get_by_text("did not come from this site")).to_be_visible()

    # A request from the page's own cookie jar, with every field but the token: refused too.
    sha = page.goto(f"/{gated}/access") and page.locator('input[name="license_sha256"]').get_attribute("value")
    forged = page.request.post(f"/{gated}/access", form={"field-0": "Forged Inc", "field-1": "Norway",
                                                        "field-2": "on", "accept_license": "on",
                                                        "license_sha256": sha or ""})
    assert forged.status == 403
    assert list(owner.api(web_server).list_pending_access_requests(gated)) == []
    # Nothing was recorded: the form is still there to fill in.
    page.reload()
    expect(page.get_by_role("button", name="Send my request")).to_be_visible()


def test_signed_out_visitor_is_sent_to_sign_in_and_back(browser: Any, web_server: ServerProcess,
                                                        requester: Person, gated: str) -> None:
    page = new_page(browser, web_server)
    page.goto(f"/{gated}/access")
    expect(page.get_by_role("button", name="Send my request")).to_have_count(0)
    with page.expect_navigation():
        page.locator("section.gate").get_by_role("link", name="Sign in").click()
    page.get_by_label("User name").fill(requester.name)
    page.get_by_label("Password", exact=True).fill("a wrong password entirely")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password")
    sign_in(page, requester, f"/{gated}/access")
    expect(page.get_by_role("button", name="Send my request")).to_be_visible()
