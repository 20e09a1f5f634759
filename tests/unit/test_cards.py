from __future__ import annotations

from releasehub.repos.cards import parse_card, parse_card_bytes


def test_front_matter_parsed() -> None:
    data, error = parse_card("---\nlicense: apache-2.0\nlanguage: [en, fr]\nextra_gated_prompt: ok\n---\n# Card\n")
    assert error is None
    assert data == {"license": "apache-2.0", "language": ["en", "fr"], "extra_gated_prompt": "ok"}


def test_no_front_matter_is_not_an_error() -> None:
    assert parse_card("# Just a title\n") == (None, None)


def test_malformed_yaml_reports_line() -> None:
    data, error = parse_card("---\nlicense: [unclosed\n---\n")
    assert data is None and error is not None and "not valid YAML" in error


def test_unclosed_front_matter() -> None:
    assert parse_card("---\nlicense: mit\n")[1] is not None


def test_non_mapping_front_matter() -> None:
    assert "mapping" in (parse_card("---\n- a\n- b\n---\n")[1] or "")


def test_dates_become_strings() -> None:
    data, _ = parse_card("---\nreleased: 2024-05-01\n---\n")
    assert data == {"released": "2024-05-01"}


def test_invalid_utf8() -> None:
    assert parse_card_bytes(b"---\n\xff\n---\n")[1] == "README.md is not valid UTF-8."


def test_crlf() -> None:
    assert parse_card("---\r\nlicense: mit\r\n---\r\n")[0] == {"license": "mit"}


def test_model_index_shape_is_checked() -> None:
    from releasehub.repos.cards import model_index_problems

    assert model_index_problems({"license": "mit"}) == []
    assert model_index_problems({"model-index": "foo"}) == [
        "model-index must be a list of models, each with `name` and `results`"]
    good = {"model-index": [{"name": "m", "results": [{"task": {"type": "text-generation"},
                                                       "dataset": {"name": "d", "type": "d"},
                                                       "metrics": [{"type": "accuracy", "value": 0.5}]}]}]}
    assert model_index_problems(good) == []
    bad = {"model-index": [{"name": "m", "results": [{"task": {}, "dataset": {"name": "d"}, "metrics": []}]}]}
    problems = model_index_problems(bad)
    assert any("task.type" in p for p in problems) and any("dataset" in p for p in problems)
    assert any("metrics must be a non-empty list" in p for p in problems)
