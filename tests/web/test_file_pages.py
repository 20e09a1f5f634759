"""Folder listings, file pages, the history and one commit: what a viewer may see, and nothing else."""

from __future__ import annotations

import re

from releasehub import publishing
from releasehub.gateway import service as gateway_service
from releasehub.hubapi.tree_routes import WITHHELD_TITLE
from releasehub.repos import service as repos
from tests.web.conftest import Site, _subject

FILES = {
    "README.md": b"---\nlicense: mit\n---\n# Tiny *model*\n<script>alert(1)</script>\n",
    "config.json": b'{"model_type": "<b>llama</b>"}',
    "model.safetensors": b"\x00\x01" * 1250,
    "tokenizer/vocab.txt": b"a\nb\n",
}
STAGED = {"stages": [{"name": "weights", "files": ["*.safetensors"],
                      "releases": [{"audience": "everyone", "at": "2099-01-01T00:00:00Z"}]}]}


def _main(html: str) -> str:
    return html[html.find("<main"):html.find("</main>")]


def _second_commit(site: Site, repo_id: str, owner: str, operations: list[repos.Operation], title: str) -> str:
    namespace, name = repo_id.split("/")
    with site.services.db.session() as session:
        repo = repos.get_repo(session, namespace, name)
        published = publishing.commit(session, site.services.store, repo, _subject(session, owner),
                                      branch=repos.DEFAULT_BRANCH, operations=operations, title=title)
        session.commit()
        return published.oid


def _head(site: Site, repo_id: str) -> str:
    namespace, name = repo_id.split("/")
    with site.services.db.session() as session:
        repo = repos.get_repo(session, namespace, name)
        return repos.resolve_revision(session, repo, "main").oid


def test_tree_lists_folders_first_with_sizes_lfs_marks_and_breadcrumbs(site: Site) -> None:
    owner = site.user()
    repo_id = site.repo(owner, files=FILES)
    page = site.browser().get(f"/{repo_id}/tree/main")
    assert page.status_code == 200
    main = _main(page.text)
    names = re.findall(r'<td><a href="[^"]+">([^<]+)</a>', main)
    assert names == ["tokenizer/", ".gitattributes", "README.md", "config.json", "model.safetensors"]
    assert f'href="/{repo_id}/tree/main/tokenizer"' in main
    assert f'href="/{repo_id}/blob/main/model.safetensors">model.safetensors</a> <span class="lfs"' in main
    assert "2.5 kB" in main and 'aria-current="page">Files' in page.text
    assert _head(site, repo_id)[:12] in main
    folder = site.browser().get(f"/{repo_id}/tree/main/tokenizer")
    assert folder.status_code == 200
    assert f'<a href="/{repo_id}/tree/main">{repo_id.split("/")[1]}</a>' in folder.text
    assert f'href="/{repo_id}/blob/main/tokenizer/vocab.txt">vocab.txt</a>' in folder.text
    assert "README.md" not in _main(folder.text)


def test_tree_refusals_missing_folder_bad_revision_and_a_file_path(site: Site) -> None:
    owner = site.user()
    repo_id = site.repo(owner, files=FILES)
    browser = site.browser()
    missing = browser.get(f"/{repo_id}/tree/main/no-such-folder")
    assert missing.status_code == 404 and missing.headers["x-error-code"] == "EntryNotFound"
    assert "no-such-folder" not in _main(missing.text)
    bad = browser.get(f"/{repo_id}/tree/no-such-branch")
    assert bad.status_code == 404 and bad.headers["x-error-code"] == "RevisionNotFound"
    to_blob = browser.get(f"/{repo_id}/tree/main/config.json", follow_redirects=False)
    assert to_blob.status_code == 302 and to_blob.headers["location"] == f"/{repo_id}/blob/main/config.json"
    assert browser.get(f"/{repo_id}/tree/main/a/../b").status_code in (400, 404)
    hidden_repo = site.repo(owner, files=FILES, visibility="private")
    assert browser.get(f"/{hidden_repo}/tree/main").status_code == 404


def test_tree_of_a_revision_with_a_slash(site: Site) -> None:
    owner = site.user()
    repo_id = site.repo(owner, files=FILES)
    namespace, name = repo_id.split("/")
    with site.services.db.session() as session:
        repos.create_branch(session, repos.get_repo(session, namespace, name), "refs/pr/1")
        session.commit()
    page = site.browser().get(f"/{repo_id}/tree/refs%2Fpr%2F1")
    assert page.status_code == 200, page.text
    assert f'href="/{repo_id}/blob/refs%2Fpr%2F1/config.json"' in page.text
    blob = site.browser().get(f"/{repo_id}/blob/refs%2Fpr%2F1/config.json")
    assert blob.status_code == 200
    assert f'href="/{repo_id}/resolve/refs%2Fpr%2F1/config.json"' in blob.text


def test_blob_shows_facts_text_escaped_markdown_sanitised_and_binary(site: Site) -> None:
    owner = site.user()
    repo_id = site.repo(owner, files=FILES)
    browser = site.browser()
    config = browser.get(f"/{repo_id}/blob/main/config.json")
    assert config.status_code == 200
    assert "&lt;b&gt;llama&lt;/b&gt;" in config.text and "<b>llama</b>" not in config.text
    assert f'href="/{repo_id}/resolve/main/config.json"' in config.text and ">download</a>" in config.text
    weights = browser.get(f"/{repo_id}/blob/main/model.safetensors")
    assert weights.status_code == 200
    assert "binary file" in weights.text and "2.5 kB" in weights.text
    namespace, name = repo_id.split("/")
    with site.services.db.session() as session:
        state = repos.commit_files(session, repos.resolve_revision(session, repos.get_repo(session, namespace, name),
                                                                   "main"))["model.safetensors"]
    assert state.sha256 in weights.text and state.git_oid in weights.text
    card = browser.get(f"/{repo_id}/blob/main/README.md")
    assert "<em>model</em>" in card.text and "<script>alert" not in card.text and "license: mit" not in card.text
    source = browser.get(f"/{repo_id}/blob/main/README.md?plain=1")
    assert "license: mit" in source.text and "&lt;script&gt;" in source.text
    assert browser.get(f"/{repo_id}/blob/main/tokenizer", follow_redirects=False).headers["location"] == \
        f"/{repo_id}/tree/main/tokenizer"


def test_staged_file_is_hidden_from_outsiders_on_every_file_page(site: Site) -> None:
    owner, outsider = site.user(), site.user()
    repo_id = site.repo(owner, files=FILES, policy=STAGED, title="Add model.safetensors")
    head = _head(site, repo_id)
    for browser in (site.browser(), site.browser(outsider)):
        tree = browser.get(f"/{repo_id}/tree/main")
        assert tree.status_code == 200 and "config.json" in tree.text
        assert "model.safetensors" not in tree.text
        hidden = browser.get(f"/{repo_id}/blob/main/model.safetensors")
        missing = browser.get(f"/{repo_id}/blob/main/no-such.safetensors")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.headers["x-error-code"] == missing.headers["x-error-code"] == "EntryNotFound"
        assert hidden.text.replace("model.safetensors", "P") == missing.text.replace("no-such.safetensors", "P")
        assert "model.safetensors" not in hidden.text
        history = browser.get(f"/{repo_id}/commits/main")
        assert history.status_code == 200
        assert WITHHELD_TITLE in history.text and "model.safetensors" not in history.text
        commit = browser.get(f"/{repo_id}/commit/{head}")
        assert commit.status_code == 200
        assert WITHHELD_TITLE in commit.text and "model.safetensors" not in commit.text
        assert "config.json" in commit.text
    team = site.browser(owner)
    assert "model.safetensors" in team.get(f"/{repo_id}/tree/main").text
    assert team.get(f"/{repo_id}/blob/main/model.safetensors").status_code == 200
    assert "Add model.safetensors" in team.get(f"/{repo_id}/commits/main").text
    assert "Add model.safetensors" in team.get(f"/{repo_id}/commit/{head}").text


def test_gated_file_shows_the_gate_not_the_content(site: Site) -> None:
    owner, outsider = site.user(), site.user()
    repo_id = site.repo(owner, files=FILES, gated="manual")
    signed_in = site.browser(outsider).get(f"/{repo_id}/blob/main/config.json")
    assert signed_in.status_code == 403 and signed_in.headers["x-error-code"] == "GatedRepo"
    assert f'href="/{repo_id}/access"' in signed_in.text
    assert "llama" not in signed_in.text and f"/{repo_id}/resolve/main/config.json" not in signed_in.text
    anonymous = site.browser().get(f"/{repo_id}/blob/main/config.json")
    assert anonymous.status_code == 401 and f"/login?next=/{repo_id}/access" in anonymous.text
    card = site.browser(outsider).get(f"/{repo_id}/blob/main/README.md")
    assert card.status_code == 200 and "<em>model</em>" in card.text  # the card is always readable
    assert "llama" in site.browser(owner).get(f"/{repo_id}/blob/main/config.json").text


def test_hosted_only_weights_say_why(site: Site) -> None:
    owner = site.user()
    repo_id = site.repo(owner, files=FILES)
    namespace, name = repo_id.split("/")
    with site.services.db.session() as session:
        gateway_service.attach(session, repos.get_repo(session, namespace, name), backend_url="http://127.0.0.1:9/v1",
                               engine_model=None, api_key_env=None, hosted_only=True, actor=owner)
        session.commit()
    page = site.browser(owner).get(f"/{repo_id}/blob/main/model.safetensors")
    assert page.status_code == 403 and page.headers["x-error-code"] == "HostedOnly"
    assert "hosted-only release" in page.text and "binary file" not in page.text
    assert site.browser(owner).get(f"/{repo_id}/blob/main/config.json").status_code == 200


def test_commit_page_lists_changes_against_the_parent(site: Site) -> None:
    owner = site.user()
    repo_id = site.repo(owner, files=FILES, title="First files")
    first = _head(site, repo_id)
    oid = _second_commit(site, repo_id, owner, [repos.AddRegular("config.json", b"{}"),
                                                repos.DeleteFile("tokenizer/vocab.txt"),
                                                repos.AddRegular("notes.md", b"# notes")], "Second: notes")
    browser = site.browser()
    page = browser.get(f"/{repo_id}/commit/{oid}")
    assert page.status_code == 200
    main = _main(page.text)
    assert "Second: notes" in main and f'href="/{repo_id}/commit/{first}"' in main
    rows = re.findall(r'class="change change-(\w+)">\w+</td>\s*<td><a href="([^"]+)">([^<]+)</a>', main)
    assert rows == [("changed", f"/{repo_id}/blob/{oid}/config.json", "config.json"),
                    ("added", f"/{repo_id}/blob/{oid}/notes.md", "notes.md"),
                    ("removed", f"/{repo_id}/blob/{first}/tokenizer/vocab.txt", "tokenizer/vocab.txt")]
    assert "1 added · 1 changed · 1 removed" in main
    assert browser.get(f"/{repo_id}/commit/{oid[:10]}").status_code == 200  # a short oid is enough
    unknown = browser.get(f"/{repo_id}/commit/{'0' * 40}")
    assert unknown.status_code == 404 and unknown.headers["x-error-code"] == "RevisionNotFound"
    assert browser.get(f"/{repo_id}/commit/not-hex").status_code == 404
    history = browser.get(f"/{repo_id}/commits/main")
    titles = re.findall(r"<td>([^<]*)</td>\s*<td>" + owner, history.text)
    assert titles[:2] == ["Second: notes", "First files"]
    assert f'href="/{repo_id}/commit/{oid}"' in history.text
