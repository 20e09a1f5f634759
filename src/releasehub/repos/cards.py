"""Model cards: README.md with YAML front matter (the Hub's `cardData`)."""

from __future__ import annotations

from typing import Any

import yaml

CARD_FILENAME = "README.md"
MAX_FRONT_MATTER_BYTES = 1024 * 1024


def _json_safe(value: Any) -> Any:
    """YAML can hold dates and other types that JSON cannot; keep them as strings."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def parse_card(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """Return (front matter, error). No front matter is (None, None), not an error."""
    normalized = text.replace("\r\n", "\n")
    if not normalized.startswith("---\n"):
        return None, None
    end = normalized.find("\n---", 3)
    if end == -1:
        return None, "README.md front matter starts with '---' but has no closing '---' line."
    block = normalized[4 : end + 1]
    if len(block.encode()) > MAX_FRONT_MATTER_BYTES:
        return None, f"README.md front matter is larger than {MAX_FRONT_MATTER_BYTES} bytes."
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, f"README.md front matter is not valid YAML{where}: {problem}."
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return None, "README.md front matter must be a YAML mapping (key: value lines)."
    return _json_safe(data), None


def parse_card_bytes(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "README.md is not valid UTF-8."
    return parse_card(text)


def _metric_problems(where: str, metrics: Any) -> list[str]:
    if not isinstance(metrics, list) or not metrics:
        return [f"{where}.metrics must be a non-empty list"]
    problems = []
    for k, metric in enumerate(metrics):
        if not isinstance(metric, dict):
            problems.append(f"{where}.metrics[{k}] must be a mapping")
        elif not isinstance(metric.get("type"), str) or "value" not in metric:
            problems.append(f"{where}.metrics[{k}] needs `type` (text) and `value`")
    return problems


def model_index_problems(data: dict[str, Any]) -> list[str]:
    """What is wrong with a card's `model-index` (the Hub's evaluation results), if it has one.

    The shape the Hub accepts: a list of {name, results: [{task: {type}, dataset: {name, type},
    metrics: [{type, value}]}]}.
    """
    index = data.get("model-index")
    if index is None:
        return []
    if not isinstance(index, list):
        return ["model-index must be a list of models, each with `name` and `results`"]
    problems: list[str] = []
    for i, model in enumerate(index):
        where = f"model-index[{i}]"
        if not isinstance(model, dict):
            problems.append(f"{where} must be a mapping with `name` and `results`")
            continue
        if not isinstance(model.get("name"), str):
            problems.append(f"{where}.name must be text")
        results = model.get("results")
        if not isinstance(results, list):
            problems.append(f"{where}.results must be a list")
            continue
        for j, result in enumerate(results):
            at = f"{where}.results[{j}]"
            if not isinstance(result, dict):
                problems.append(f"{at} must be a mapping with `task`, `dataset` and `metrics`")
                continue
            task, dataset = result.get("task"), result.get("dataset")
            if not isinstance(task, dict) or not isinstance(task.get("type"), str):
                problems.append(f"{at}.task.type must be text (e.g. text-generation)")
            if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str) \
                    or not isinstance(dataset.get("type"), str):
                problems.append(f"{at}.dataset needs `name` and `type` (text)")
            problems.extend(_metric_problems(at, result.get("metrics")))
    return problems
