"""Cards are user content: rendered markdown keeps formatting and loses everything that could run."""

from __future__ import annotations

import re

import pytest

from releasehub.web.templating import card_body, render_markdown

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src="x.png" onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](&#106;avascript:alert(1))",
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<iframe src="https://example.org"></iframe>',
    "<style>body { display: none }</style>",
    '<svg onload="alert(1)"><circle r="5"/></svg>',
    '<p style="background: url(https://example.org/track.png)">x</p>',
    '<form action="https://example.org"><input name="q"></form>',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<div onclick="alert(1)">x</div>',
    '<a href="https://example.org" target="_blank">x</a>',
    '<meta http-equiv="refresh" content="0;url=https://example.org">',
    "<base href='https://example.org/'>",
]


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_markup_renders_inert(source: str) -> None:
    html = str(render_markdown(f"# Card\n\n{source}\n"))
    lowered = html.lower()
    for forbidden in ("<script", "<iframe", "<style", "<svg", "<object", "<embed", "<form", "<input", "<meta",
                      "<base", "style=", "target="):
        assert forbidden not in lowered, (source, html)
    assert not re.search(r"\son\w+\s*=", lowered), (source, html)
    # Left as text is inert; what must never appear is such a URL in an attribute.
    for _, url in re.findall(r"""(href|src|action)\s*=\s*["']?([^"'\s>]*)""", lowered):
        assert not url.startswith(("javascript:", "data:", "&#")), (source, html)


def test_formatting_survives() -> None:
    html = str(render_markdown("# Title\n\n**bold** and `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                               "[link](https://example.org) ![fig](figure.png)\n"))
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<table>" in html and "<td>1</td>" in html
    assert 'href="https://example.org"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert 'src="figure.png"' in html


def test_card_body_drops_the_front_matter() -> None:
    assert card_body("---\nlicense: mit\n---\n# Hi\n") == "# Hi\n"
    assert card_body("# No front matter\n") == "# No front matter\n"
