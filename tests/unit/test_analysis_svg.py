"""The web pages' SVG charts: well-formed, no inline style, integer ticks from zero, escaped, honest notes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from releasehub.analysis.catalogue import find_model
from releasehub.analysis.hardware import find_accelerator
from releasehub.analysis.profile import build_profile
from releasehub.analysis.svg import context_chart, gb_text, integer_ticks, memory_chart, short_name

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def profiles() -> list[dict[str, Any]]:
    names = ("llama-3.1-405b-instruct", "qwen3-8b", "gpt-4")
    built = [build_profile(None, entry=find_model(name)) for name in names]
    built[1] = {**built[1], "name": HOSTILE}
    return built


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _texts(root: ET.Element) -> list[str]:
    return ["".join(el.itertext()) for el in root.iter(f"{NS}text")]


def test_both_charts_are_well_formed_accessible_and_style_free(profiles: list[dict[str, Any]]) -> None:
    for chart in (memory_chart(profiles), context_chart(profiles, "h100-80gb")):
        root = _parse(chart.svg)
        assert root.tag == f"{NS}svg" and root.get("role") == "img"
        title = root.find(f"{NS}title")
        assert title is not None and title.text == chart.title
        assert title.get("id") in (root.get("aria-labelledby") or "").split()
        for element in root.iter():
            assert element.tag not in (f"{NS}style", f"{NS}script", f"{NS}foreignObject", f"{NS}image", f"{NS}use")
            assert "style" not in element.attrib
            assert not any(key.endswith("href") for key in element.attrib)
            assert not any(key.startswith("on") for key in element.attrib)
        assert "<style" not in chart.svg and "style=" not in chart.svg and "url(" not in chart.svg


def test_hostile_names_are_escaped(profiles: list[dict[str, Any]]) -> None:
    for chart in (memory_chart(profiles), context_chart(profiles)):
        assert HOSTILE not in chart.svg and "&lt;script&gt;" in chart.svg
        root = _parse(chart.svg)  # still one well-formed document, and no script element in it
        assert root.find(f".//{NS}script") is None
        shown = _texts(root) + ["".join(t.itertext()) for t in root.iter(f"{NS}title")]
        assert any(text.startswith("<script>") for text in shown)  # drawn as text, not markup


def test_context_chart_starts_at_zero_with_integer_ticks(profiles: list[dict[str, Any]]) -> None:
    chart = context_chart(profiles, "h100-80gb")
    root = _parse(chart.svg)
    # y tick labels are right-aligned at the left of the plot
    labels = [el.text or "" for el in root.iter(f"{NS}text") if el.get("text-anchor") == "end"]
    ticks = [int(label) for label in labels]
    assert ticks[0] == 0 and ticks == sorted(ticks) and len(set(ticks)) == len(ticks)
    assert all(re.fullmatch(r"\d+", label) for label in labels)
    assert ticks[-1] >= 13  # Llama 3.1 405B needs 13 H100 at 128K tokens
    assert "H100 (SXM)" in chart.title


@pytest.mark.parametrize("top", [0, 1, 2, 7, 8, 13, 30, 99, 250, 1234])
def test_integer_ticks(top: int) -> None:
    ticks = integer_ticks(top)
    assert ticks[0] == 0 and ticks[-1] > top and all(isinstance(t, int) for t in ticks)
    assert len(ticks) <= 9 and len({b - a for a, b in zip(ticks, ticks[1:])}) == 1


def test_closed_models_are_noted_not_drawn(profiles: list[dict[str, Any]]) -> None:
    memory = memory_chart(profiles)
    assert memory.not_drawn == ("GPT-4 (closed weights)",)
    assert [row[0] for row in memory.rows] == ["Llama 3.1 405B Instruct", HOSTILE]
    assert "GPT-4" not in memory.svg
    context = context_chart(profiles)
    assert context.not_drawn == ("GPT-4 (closed weights)",)
    assert context.columns == ("context (tokens)", "Llama 3.1 405B Instruct", HOSTILE)


def test_memory_chart_is_in_decimal_gb_only(profiles: list[dict[str, Any]]) -> None:
    chart = memory_chart(profiles)
    assert "GiB" not in chart.svg and "GB, 10^9 bytes" in chart.svg
    assert chart.columns == ("model", "FP32 (GB)", "BF16 (GB)", "FP8 (GB)", "INT4 (GB)")
    llama = dict(zip(chart.columns, chart.rows[0]))
    assert llama["BF16 (GB)"] == "812" and llama["FP8 (GB)"] == "406"
    # Reference lines name the accelerator without its marketing size (80GB is not 85.5 GB).
    assert "one H100 (SXM): 85.5 GB" in chart.svg and "80GB" not in chart.svg
    assert short_name(find_accelerator("rtx-4090")) == "RTX 4090"


def test_nothing_to_draw_still_makes_a_valid_chart() -> None:
    closed = [build_profile(None, entry=find_model("gpt-4"))]
    for chart in (memory_chart(closed), context_chart(closed)):
        _parse(chart.svg)
        assert chart.rows == () and chart.not_drawn == ("GPT-4 (closed weights)",)


def test_gb_text() -> None:
    assert gb_text(811.7) == "812" and gb_text(16.4) == "16.4" and gb_text(0.00044979) == "0.000450"
