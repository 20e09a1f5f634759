"""The access-profile and compare pages: the paper's tables, the viewer's options, charts, and hiding."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from releasehub.demo import build_tiny_model
from tests.web.conftest import Site

SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(folder)
    return {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir()) if path.is_file()}


def _main(html: str) -> str:
    return html[html.find("<main"):html.find("</main>")]


def _cells(html: str, label: str) -> list[str]:
    """The data cells of the first table row whose header cell starts with `label`."""
    match = re.search(rf"<tr>\s*<th scope=\"row\">{re.escape(label)}[^<]*</th>(.*?)</tr>", html, re.S)
    assert match is not None, f"no row {label!r}"
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)]


def _row(html: str, label: str) -> str:
    return " | ".join(_cells(html, label))


def _has_row(html: str, label: str) -> bool:
    return re.search(rf"<th scope=\"row\">{re.escape(label)}", html) is not None


def _svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(match) for match in re.findall(r"<svg\b.*?</svg>", html, re.S)]


def test_profile_page_shows_the_three_tables_openness_and_facts(site: Site, tiny_files: dict[str, bytes]) -> None:
    owner = site.user()
    repo_id = site.repo(owner, files=tiny_files)
    page = site.browser().get(f"/{repo_id}/access-profile")
    assert page.status_code == 200, page.text
    main = _main(page.text)
    for heading in ("Model", "Resourcing", "Technical usability", "Utility", "Openness"):
        assert f">{heading}</h2>" in main
    assert "Weight memory" in main and "KV cache" in main and "Accelerators to serve it" in main
    assert "112,448" in _row(main, "parameters") and "from weights" in _row(main, "parameters")
    assert "Missing for the next class" in main and "OSI Open Source AI Definition 1.0" in main
    assert '<table class="data"' in main and '<th scope="col">' in main
    assert 'aria-current="page"' in main and 'href="/' + repo_id + '/access-profile"' in main
    charts = _svgs(main)
    assert len(charts) == 2 and all(svg.get("role") == "img" for svg in charts)
    for svg in charts:  # the page's CSP allows no inline style: presentation attributes only
        assert all(el.tag != f"{SVG_NS}style" and "style" not in el.attrib for el in svg.iter())
        assert svg.find(f"{SVG_NS}title") is not None and svg.get("aria-labelledby")
    assert "The numbers of this chart" in main  # the same figures as a table


def test_chosen_context_and_accelerator_change_the_figures(site: Site, tiny_files: dict[str, bytes]) -> None:
    owner = site.user()
    repo_id = site.repo(owner, files=tiny_files)
    browser = site.browser()
    default = _main(browser.get(f"/{repo_id}/access-profile").text)
    # The tiny model's maximum context is 512 tokens: the default KV cache is sized there.
    assert _has_row(default, "at 512 tokens x 1") and not _has_row(default, "at 65,536 tokens")
    assert _has_row(default, "rtx-4090") and _has_row(default, "l40s")
    assert "H100 (SXM) needed against context length" in default
    chosen = browser.get(f"/{repo_id}/access-profile", params={"context": "65,536", "gpu": "RTX 4090"})
    assert chosen.status_code == 200
    main = _main(chosen.text)
    assert _has_row(main, "at 65,536 tokens x 1") and not _has_row(main, "at 512 tokens x 1")
    # As `releasehub analyze --gpu rtx-4090` plans: that accelerator only, and the chart is drawn for it.
    assert _cells(main, "rtx-4090")[:2] == ["1", "1"] and not _has_row(main, "l40s")
    assert '<option value="rtx-4090" selected>' in main and 'value="65,536"' in main
    assert "RTX 4090 needed against context length" in main


def test_invalid_context_is_a_400_in_place(site: Site, tiny_files: dict[str, bytes]) -> None:
    owner = site.user()
    repo_id = site.repo(owner, files=tiny_files)
    browser = site.browser()
    for params in ({"context": "-5"}, {"context": "lots"}, {"context": "99999999999"}, {"gpu": "tpu-v9"}):
        page = browser.get(f"/{repo_id}/access-profile", params=params)
        assert page.status_code == 400, params
        main = _main(page.text)
        assert 'class="alert" role="alert"' in main
        assert "The context length must be a whole number" in main or "unknown accelerator" in main
        assert '<form method="get"' in main and "Weight memory" in main  # the form, then the defaults


def test_compare_two_repos_and_a_catalogue_model(site: Site, tiny_files: dict[str, bytes]) -> None:
    owner = site.user()
    first, second = site.repo(owner, files=tiny_files), site.repo(owner, files=tiny_files)
    page = site.browser().get("/compare", params={"models": f"{first}, {second}, gpt-4"})
    assert page.status_code == 200, page.text
    main = _main(page.text)
    assert "Resourcing: comparing models" in main and "Technical usability: comparing models" in main
    assert "Utility: comparing models" in main
    head = re.search(r"Resourcing: comparing models.*?<thead>(.*?)</thead>", main, re.S)
    assert head is not None and first in head.group(1) and second in head.group(1) and "GPT-4" in head.group(1)
    assert _cells(main, "Hosting infrastructure")[2] == "N/A (deployer supplied)"
    assert _cells(main, "Hosting infrastructure")[0].startswith("1 x h100-80gb by memory")
    charts = _svgs(main)
    assert len(charts) == 2
    assert "Not drawn: GPT-4 (closed weights)" in main


def test_compare_without_models_is_a_form(site: Site) -> None:
    page = site.browser().get("/compare")
    assert page.status_code == 200
    assert '<label for="models">' in page.text and 'id="models"' in page.text
    assert "<svg" not in page.text


def test_compare_bad_input(site: Site) -> None:
    browser = site.browser()
    many = ",".join(f"qwen3-{n}" for n in ("0.6b", "4b", "8b", "14b", "32b", "30b-a3b", "235b-a22b"))
    assert browser.get("/compare", params={"models": many}).status_code == 400
    bad = browser.get("/compare", params={"models": "gpt-4,qwen3-8b", "context": "0"})
    assert bad.status_code == 400 and "The context length must be a whole number" in bad.text
    hostile = browser.get("/compare", params={"models": "<script>alert(1)</script>"})
    assert hostile.status_code == 404 and "<script>alert(1)" not in hostile.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;: not found" in hostile.text


def test_compare_context_choice_changes_the_kv_row(site: Site) -> None:
    browser = site.browser()
    default = _main(browser.get("/compare", params={"models": "qwen3-8b,gpt-4"}).text)
    chosen = _main(browser.get("/compare", params={"models": "qwen3-8b,gpt-4", "context": "8192",
                                                   "gpu": "l4"}).text)
    assert "at 40,960 tokens" in _row(default, "KV cache")
    assert "at 8,192 tokens" in _row(chosen, "KV cache")
    assert "x l4 by memory" in _row(chosen, "Hosting infrastructure")
    assert "L4 needed against context length" in chosen


def test_compare_hidden_repo_reads_as_missing(site: Site, tiny_files: dict[str, bytes]) -> None:
    owner, outsider = site.user(), site.user()
    hidden = site.repo(owner, files=tiny_files, visibility="private")
    missing = f"{owner}/no-such-model"
    for browser in (site.browser(), site.browser(outsider)):
        shown = browser.get("/compare", params={"models": f"{hidden},qwen3-8b"})
        absent = browser.get("/compare", params={"models": f"{missing},qwen3-8b"})
        assert shown.status_code == absent.status_code == 200
        assert "not found" in shown.text
        assert shown.text.replace(hidden, "X") == absent.text.replace(missing, "X")
        alone = browser.get("/compare", params={"models": hidden})
        alone_missing = browser.get("/compare", params={"models": missing})
        assert alone.status_code == alone_missing.status_code == 404
        assert alone.text.replace(hidden, "X") == alone_missing.text.replace(missing, "X")
    # The owner compares it.
    mine = _main(site.browser(owner).get("/compare", params={"models": f"{hidden},qwen3-8b"}).text)
    assert "not found" not in mine and _cells(mine, "Parameters")[0] != "undisclosed"
    assert f'<th scope="col">{hidden}</th>' in mine
    # The profile page of the hidden repo is the missing page too.
    outsider_browser = site.browser(outsider)
    shown = outsider_browser.get(f"/{hidden}/access-profile")
    absent = outsider_browser.get(f"/{missing}/access-profile")
    assert shown.status_code == absent.status_code == 404
    assert shown.text.replace(hidden, "X") == absent.text.replace(missing, "X")


def test_staged_weights_hidden_from_an_outsider_do_not_count(site: Site, tiny_files: dict[str, bytes]) -> None:
    owner, outsider = site.user(), site.user()
    staged = {"stages": [{"name": "later", "files": ["*.safetensors"], "releases": []}]}
    without_config = {k: v for k, v in tiny_files.items() if k != "config.json"}
    repo_id = site.repo(owner, files=without_config, policy=staged)
    owners = _main(site.browser(owner).get(f"/{repo_id}/access-profile").text)
    assert "from weights" in _row(owners, "parameters") and "1 safetensors file(s)" in _row(owners, "read")
    mine = _main(site.browser(owner).get("/compare", params={"models": f"{repo_id},qwen3-8b"}).text)
    assert _cells(mine, "Parameters")[0] == "0.0B"  # 112,448 parameters, counted from the weights
    for browser in (site.browser(), site.browser(outsider)):
        page = browser.get(f"/{repo_id}/access-profile")
        assert page.status_code == 200
        main = _main(page.text)
        # The staged file does not exist for them: no count from it, no size, not even its name.
        assert "from weights" not in main and "safetensors" not in main and not _has_row(main, "parameters")
        assert "No model here has weights to size" in main and "(no size known)" in main
        compared = _main(browser.get("/compare", params={"models": f"{repo_id},qwen3-8b"}).text)
        assert _cells(compared, "Parameters")[0] == "undisclosed"
        assert "safetensors" not in compared


def test_a_gated_repo_profile_names_only_listed_files(site: Site, tiny_files: dict[str, bytes]) -> None:
    owner, outsider = site.user(), site.user()
    repo_id = site.repo(owner, files=tiny_files, gated="manual")
    main = _main(site.browser(outsider).get(f"/{repo_id}/access-profile").text)
    assert "Files you cannot read yet" in main and "<code>model.safetensors</code>" in main
    assert "from weights" not in main
