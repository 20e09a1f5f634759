"""Prompt tokens counted with the repo's own tokenizer (`gateway.tokenizing`): a tiny BPE tokenizer
trained here, a chat template rendered here independently (as transformers and vLLM render it), and
the counter's cache per repo and commit."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from releasehub.gateway import tokenizing
from releasehub.gateway.tokenizing import FALLBACK_SHAPE, Counters, PromptCounter, build_counter, calibrate

TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
CONFIG = {"bos_token": "<s>", "eos_token": {"content": "</s>"}, "chat_template": TEMPLATE}


@pytest.fixture(scope="module")
def tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=280, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["the quick brown fox jumps over the lazy dog", "hello world, hello there",
                             "a model release is more than a file of weights"], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return str(tok.to_str())


def rendered_tokens(tokenizer_json: str, messages: list[dict[str, Any]]) -> int:
    """What the engine counts: the template rendered (jinja2 as transformers sets it up), then
    encoded without adding special tokens (the template writes them)."""
    import jinja2
    from tokenizers import Tokenizer

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(TEMPLATE).render(messages=messages, add_generation_prompt=True, bos_token="<s>",
                                            eos_token="</s>")
    return len(Tokenizer.from_str(tokenizer_json).encode(text, add_special_tokens=False).ids)


def test_completion_prompts_count_as_the_engine_encodes_them(tokenizer_json: str) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    counter = build_counter(tokenizer_json, CONFIG)
    prompt = "the quick brown fox, 42 times: über-lazy 狐狸"
    expected = len(tok.encode(prompt).ids)
    assert tok.encode(prompt).ids[0] == 1  # the <s> the engine adds too
    assert counter.count("completions", {"prompt": prompt}) == expected
    # a list of prompts: each with its <s>; token ids are the proxy's to count
    assert counter.count("completions", {"prompt": [prompt, "hello"]}) == expected + len(tok.encode("hello").ids)
    assert counter.count("completions", {"prompt": [1, 2, 3]}) == 0
    assert counter.count("completions", {"prompt": "hello", "suffix": " world"}) == \
        len(tok.encode("hello").ids) + len(tok.encode(" world", add_special_tokens=False).ids)


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "hello world"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "the lazy dog?"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "model release"},
     {"role": "user", "content": "hello there, fox"}],
])
def test_chat_counts_what_the_template_renders(tokenizer_json: str, messages: list[dict[str, Any]]) -> None:
    counter = build_counter(tokenizer_json, CONFIG)
    assert counter.shape.calibrated
    assert counter.count("chat", {"messages": messages}) == rendered_tokens(tokenizer_json, messages)


def test_template_from_chat_template_jinja_wins(tokenizer_json: str) -> None:
    counter = build_counter(tokenizer_json, {"bos_token": "<s>", "eos_token": "</s>", "chat_template": "{{ 1/0 }}"},
                            jinja_file=TEMPLATE)
    messages = [{"role": "user", "content": "hello world"}]
    assert counter.count("chat", {"messages": messages}) == rendered_tokens(tokenizer_json, messages)


def test_without_a_usable_template_the_rule_of_thumb(tokenizer_json: str) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    content = len(tok.encode("hello world", add_special_tokens=False).ids)
    body = {"messages": [{"role": "user", "content": "hello world"}, {"role": "user", "content": "hello world"}]}
    for config in (None, {"chat_template": "{% if %}"}, {"chat_template": "{{ raise_exception('no') }}"}):
        counter = build_counter(tokenizer_json, config)
        assert counter.shape == FALLBACK_SHAPE
        assert counter.count("chat", body) == 3 + 2 * (4 + content)


def test_calibration_of_a_template_that_refuses_system_messages(tokenizer_json: str) -> None:
    from tokenizers import Tokenizer

    strict = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}" + TEMPLATE)
    shape = calibrate(Tokenizer.from_str(tokenizer_json), strict, CONFIG)
    assert shape.calibrated and shape.per_role["system"] == shape.per_role["user"] > 0


def test_tools_and_text_parts_are_counted(tokenizer_json: str) -> None:
    counter = build_counter(tokenizer_json, CONFIG)
    plain = counter.count("chat", {"messages": [{"role": "user", "content": "hello"}]})
    parts = counter.count("chat", {"messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]})
    assert parts == plain
    # Parts reach the template as one text, joined by newlines (as vLLM passes them)
    two = [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {"url": "x"}},
           {"type": "text", "text": "world"}]
    assert counter.count("chat", {"messages": [{"role": "user", "content": two}]}) == \
        rendered_tokens(tokenizer_json, [{"role": "user", "content": "hello\nworld"}])
    tools = [{"type": "function", "function": {"name": "lookup", "description": "find the fox"}}]
    assert counter.count("chat", {"messages": [{"role": "user", "content": "hello"}], "tools": tools}) > plain + 3


class _Loads:
    def __init__(self, result: Any) -> None:
        self.result, self.calls = result, 0

    def __call__(self, database: Any, store: Any, commit_pk: int) -> Any:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_counters_load_once_per_commit_and_remember_misses(monkeypatch: pytest.MonkeyPatch,
                                                           tokenizer_json: str) -> None:
    counter = build_counter(tokenizer_json, CONFIG)
    loads = _Loads(counter)
    monkeypatch.setattr(tokenizing, "_load", loads)
    cache = Counters(size=2)

    async def calls() -> list[Any]:
        first = await asyncio.gather(*(cache.get(None, None, 7, 70) for _ in range(5)))  # one load for all
        return [*first, await cache.get(None, None, 7, 70), await cache.get(None, None, 7, None)]

    found = asyncio.run(calls())
    assert found[:6] == [counter] * 6 and found[6] is None and loads.calls == 1

    loads.result = None  # a commit without tokenizer.json: remembered, not read again
    assert asyncio.run(cache.get(None, None, 7, 71)) is None
    assert asyncio.run(cache.get(None, None, 7, 71)) is None and loads.calls == 2
    loads.result = ValueError("not a tokenizer")  # a broken one: the estimate, and not read again either
    assert asyncio.run(cache.get(None, None, 8, 80)) is None
    assert asyncio.run(cache.get(None, None, 8, 80)) is None and loads.calls == 3
    # Two kept: (7, 70), the oldest, went
    loads.result = counter
    assert asyncio.run(cache.get(None, None, 7, 70)) is counter and loads.calls == 4


def test_a_slow_load_estimates_meanwhile(monkeypatch: pytest.MonkeyPatch, tokenizer_json: str) -> None:
    import threading

    release = threading.Event()
    counter = build_counter(tokenizer_json, CONFIG)

    def slow(database: Any, store: Any, commit_pk: int) -> PromptCounter:
        release.wait(10)
        return counter

    monkeypatch.setattr(tokenizing, "_load", slow)
    monkeypatch.setattr(tokenizing, "LOAD_WAIT_S", 0.05)
    cache = Counters()

    async def calls() -> tuple[Any, Any]:
        waited = await cache.get(None, None, 1, 1)
        release.set()
        while (1, 1) not in cache._done:
            await asyncio.sleep(0.01)
        return waited, await cache.get(None, None, 1, 1)

    assert asyncio.run(calls()) == (None, counter)


def test_the_proxy_counts_with_the_tokenizer_and_falls_back_to_the_estimate(monkeypatch: pytest.MonkeyPatch,
                                                                            tokenizer_json: str) -> None:
    from releasehub.access.policy import TierApi
    from releasehub.gateway.lookup import Hosted, Target, TierTerms
    from releasehub.gateway.proxy import _Call
    from releasehub.gateway.ratelimit import Limits

    counter = build_counter(tokenizer_json, CONFIG)
    monkeypatch.setattr(tokenizing, "_load", lambda database, store, commit_pk: counter if commit_pk == 5 else None)
    monkeypatch.setattr(tokenizing, "counters", Counters())
    monkeypatch.setattr("releasehub.gateway.proxy.counters", tokenizing.counters)
    terms = TierTerms(TierApi(), Limits(), (), ())
    hosted = Hosted("http://engine/v1", "m", None, 10.0, False, (), None)
    body = {"model": "lab/m", "prompt": "the quick brown fox jumps over the lazy dog " * 3}
    services = type("S", (), {"db": None, "store": None})()

    def tokens(head: int | None) -> int:
        call = _Call(None, None, Target(1, "lab/m", hosted, terms, head), "completions", body, 0.0,  # type: ignore[arg-type]
                     services)
        return asyncio.run(call.prompt_tokens(body["prompt"], 0))

    from tokenizers import Tokenizer

    assert tokens(5) == len(Tokenizer.from_str(tokenizer_json).encode(body["prompt"]).ids)
    assert tokens(6) == tokens(None) == -(-len(body["prompt"]) // 4)  # no tokenizer.json: the byte estimate
    assert json.dumps(body)  # the body is not changed by counting


def test_the_tokenizer_is_read_from_the_repos_head_commit(tmp_path: Any) -> None:
    """`_load` reads tokenizer.json and tokenizer_config.json of a commit from the database and the
    blob store: the demo release holds the demo's tokenizer (and no template)."""
    from tokenizers import Tokenizer

    from releasehub.demo import build_tiny_model, seed_demo
    from releasehub.repos import service as repos
    from releasehub.services import Services
    from releasehub.settings import Settings

    services = Services.build(Settings(data_dir=tmp_path / "data"))
    try:
        seed_demo(services)
        with services.db.session() as session:
            repo = repos.get_repo(session, "demo", "tiny-llama")
            head = repos.resolve_revision(session, repo, repos.DEFAULT_BRANCH).id
            oldest = repos.list_commits(session, repo, repos.resolve_revision(session, repo, repos.DEFAULT_BRANCH))[-1]
            first = oldest.id
            assert "tokenizer.json" not in repos.commit_files(session, oldest)  # the repo's creation
        counter = tokenizing._load(services.db, services.store, head)
        build_tiny_model(tmp_path / "model")
        tok = Tokenizer.from_file(str(tmp_path / "model" / "tokenizer.json"))
        assert counter is not None and counter.shape == FALLBACK_SHAPE  # the demo's card model has no template
        text = "A model release is more than a file of weights."
        assert counter.count("completions", {"prompt": text}) == len(tok.encode(text).ids)
        assert first != head and tokenizing._load(services.db, services.store, first) is None  # the estimate
        assert tokenizing._load(services.db, services.store, 10**9) is None
    finally:
        services.close()
