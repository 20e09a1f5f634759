"""Prompt tokens counted with the hosted repo's own tokenizer, instead of the byte estimate.

The charge made before a call (and the check against the tier's `max_context`) needs the prompt's
size in tokens. When the hosted repo's head commit (its `main` branch) holds a `tokenizer.json`,
the gateway loads it with the `tokenizers` library once per repo and commit, and counts with it:

- a completion's prompt: each text prompt encoded as the engine encodes it (with the tokenizer's
  special tokens, such as Llama's `<s>`); prompts given as token ids count one token an id;
- a chat: each message's text encoded on its own, plus what the chat template adds around it. The
  template (`chat_template.jinja`, or `chat_template` in `tokenizer_config.json`) is rendered only
  while loading, on a few sample conversations, in a sandbox, to measure what it adds: a fixed part
  (the BOS, the generation prompt) and a part per message of each role. Calls never run the
  repo's template, so a template cannot slow the request path. The count is exact for templates
  that wrap each message's text in markers and close to it for others (one that trims or
  rewrites the text, or merges the system message into the first user message). Without a
  template, each message counts 4 tokens besides its text and the reply 3 (OpenAI's rule of thumb).
  The tools, functions and documents offered are encoded as their text.

The engine's `usage` still settles the charge; the count only makes the charge and the context
check right up front. A repo without `tokenizer.json`, a tokenizer that fails to load, or one whose
load takes longer than `LOAD_WAIT_S` is counted with the byte estimate (`params.estimate_tokens`).
A tokenizer loads in a worker thread (a large one, 10 MB of JSON, takes about a second); prompts
longer than `INLINE_CHARS` are encoded in a worker thread too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from anyio import to_thread

from .params import _CHAT_EXTRA_TEXT, _message_strings, _strings

log = logging.getLogger("releasehub.gateway")

TOKENIZER = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
CHAT_TEMPLATE = "chat_template.jinja"
MAX_TOKENIZER_BYTES = 64 * 1024 * 1024   # Llama 3's is 9 MB, Gemma's 33 MB
MAX_CONFIG_BYTES = 4 * 1024 * 1024
LOAD_WAIT_S = 10.0        # a call waits this long for its repo's tokenizer to load, then estimates
INLINE_CHARS = 16_384     # longer prompts are encoded in a worker thread
CACHED_TOKENIZERS = 16    # (repo, commit) pairs kept per process
FALLBACK_PER_MESSAGE = 4  # without a usable chat template: tokens a message adds besides its text...
FALLBACK_REPLY = 3        # ... and the tokens that open the reply
_SAMPLE = "hello"         # the text of the sample messages that calibrate a template


@dataclass(frozen=True)
class ChatShape:
    """What a chat template adds to the messages' text, in tokens."""

    fixed: int                      # once per conversation: BOS, the generation prompt
    per_role: Mapping[str, int]     # around each message of a role
    default: int                    # around a message of another role (tool, developer)
    calibrated: bool                # measured on the template (False: the rule of thumb)

    def around(self, role: Any) -> int:
        return self.per_role.get(role, self.default) if isinstance(role, str) else self.default


FALLBACK_SHAPE = ChatShape(FALLBACK_REPLY, {}, FALLBACK_PER_MESSAGE, False)


@dataclass
class PromptCounter:
    """Counts a call's prompt tokens with one repo's tokenizer (safe to share between threads)."""

    tokenizer: Any  # tokenizers.Tokenizer
    shape: ChatShape = FALLBACK_SHAPE

    def _encoded(self, texts: list[str], special: bool) -> int:
        # One encode a text (encode_batch would start the library's thread pool for a few short texts).
        return sum(len(self.tokenizer.encode(text, add_special_tokens=special).ids) for text in texts)

    def completion(self, body: Mapping[str, Any]) -> int:
        prompt = body.get("prompt")
        items = prompt if isinstance(prompt, list) else [prompt]
        texts = [p for p in items if isinstance(p, str)]
        suffix = body.get("suffix")
        extra = [suffix] if isinstance(suffix, str) and suffix else []
        return self._encoded(texts, True) + self._encoded(extra, False)

    def chat(self, body: Mapping[str, Any]) -> int:
        messages = body.get("messages")
        count = self.shape.fixed
        if isinstance(messages, list):
            for message in messages:
                role = message.get("role") if isinstance(message, Mapping) else None
                count += self.shape.around(role) + self._encoded(_texts_of(message), False)
        extra = [s for name in _CHAT_EXTRA_TEXT if body.get(name) for s in _strings(body[name], keys=True)]
        if isinstance(body.get("chat_template"), str):
            extra.append(body["chat_template"])
        return count + self._encoded(extra, False)

    def count(self, endpoint: str, body: Mapping[str, Any]) -> int:
        return self.chat(body) if endpoint == "chat" else self.completion(body)


def _texts_of(message: Any) -> list[str]:
    """The texts of one message as the template reads them: a content given as parts is one text, its
    text parts joined by newlines (as vLLM and transformers pass it to a template that reads a string)."""
    if not isinstance(message, Mapping) or not isinstance(message.get("content"), list):
        return _message_strings([message])
    parts = [p["text"] for p in message["content"] if isinstance(p, Mapping) and isinstance(p.get("text"), str)]
    rest = _message_strings([{k: v for k, v in message.items() if k != "content"}])
    return ["\n".join(parts), *rest] if parts else rest


# ---------------------------------------------------------------------------------------------
# Building a counter from the repo's files


def _template_env() -> Any:
    """A sandbox like the one transformers renders chat templates in (a template is untrusted code)."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def _special(config: Mapping[str, Any], name: str) -> str:
    """bos_token / eos_token as tokenizer_config.json writes them: a string or {"content": ...}."""
    value = config.get(name)
    if isinstance(value, Mapping):
        value = value.get("content")
    return value if isinstance(value, str) else ""


def chat_template(config: Mapping[str, Any] | None, jinja_file: str | None) -> str | None:
    """The repo's default chat template: chat_template.jinja, else tokenizer_config.json's (a string,
    or a list of named templates of which the one named "default")."""
    if jinja_file and jinja_file.strip():
        return jinja_file
    found = (config or {}).get("chat_template")
    if isinstance(found, str):
        return found
    if isinstance(found, list):
        for item in found:
            if isinstance(item, Mapping) and item.get("name") == "default" and isinstance(item.get("template"), str):
                return str(item["template"])
    return None


def calibrate(tokenizer: Any, template: str | None, config: Mapping[str, Any] | None) -> ChatShape:
    """Measure what `template` adds around messages, from a few sample conversations: the fixed part
    and the part per user, assistant and system message. FALLBACK_SHAPE when it cannot be rendered."""
    if not template:
        return FALLBACK_SHAPE
    config = config or {}
    try:
        compiled = _template_env().from_string(template)
    except Exception as exc:  # noqa: BLE001 (any template error: count with the rule of thumb)
        log.info("chat template does not compile (%s); counting with the rule of thumb", exc)
        return FALLBACK_SHAPE
    specials = {"bos_token": _special(config, "bos_token"), "eos_token": _special(config, "eos_token")}

    def tokens(roles: Iterable[str], generation: bool = True) -> int:
        messages = [{"role": role, "content": _SAMPLE} for role in roles]
        text = compiled.render(messages=messages, add_generation_prompt=generation, tools=None, documents=None,
                               **specials)
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    content = len(tokenizer.encode(_SAMPLE, add_special_tokens=False).ids)
    try:
        one = tokens(["user"])
        one_bare = tokens(["user"], generation=False)
        reply_bare = tokens(["user", "assistant"], generation=False)
        three = tokens(["user", "assistant", "user"])
    except Exception as exc:  # noqa: BLE001
        log.info("chat template fails on a sample conversation (%s); counting with the rule of thumb", exc)
        return FALLBACK_SHAPE
    assistant = max(0, reply_bare - one_bare - content)
    user = max(0, three - one - 2 * content - assistant)
    fixed = max(0, one - content - user)
    try:
        system = max(0, tokens(["system", "user"]) - one - content)
    except Exception:  # noqa: BLE001 (a template that refuses system messages)
        system = user
    return ChatShape(fixed, {"user": user, "assistant": assistant, "system": system}, user, True)


def build_counter(tokenizer_json: str, config: Mapping[str, Any] | None = None,
                  jinja_file: str | None = None) -> PromptCounter:
    """A counter from the text of a repo's tokenizer.json (and its tokenizer_config.json and
    chat_template.jinja, when it has them). Raises on a tokenizer that does not load."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return PromptCounter(tokenizer, calibrate(tokenizer, chat_template(config, jinja_file), config))


# ---------------------------------------------------------------------------------------------
# Per repo and commit


def _load(database: Any, store: Any, commit_pk: int) -> PromptCounter | None:
    """Read the tokenizer's files of a commit from the blob store and build its counter (a thread)."""
    from sqlalchemy import select

    from releasehub.repos.models import CommitFile

    with database.engine.connect() as conn:
        rows = conn.execute(select(CommitFile.path, CommitFile.sha256, CommitFile.size).where(
            CommitFile.commit_id == commit_pk,
            CommitFile.path.in_((TOKENIZER, TOKENIZER_CONFIG, CHAT_TEMPLATE)))).all()
    files = {path: (sha, size) for path, sha, size in rows}
    if TOKENIZER not in files:
        return None
    texts: dict[str, str] = {}
    for path, (sha, size) in files.items():
        limit = MAX_TOKENIZER_BYTES if path == TOKENIZER else MAX_CONFIG_BYTES
        if size > limit:
            log.info("%s is %d bytes, more than %d: not read", path, size, limit)
            continue
        texts[path] = store.read_bytes(sha).decode("utf-8", "replace")
    if TOKENIZER not in texts:
        return None
    config: Any = None
    if TOKENIZER_CONFIG in texts:
        try:
            config = json.loads(texts[TOKENIZER_CONFIG])
        except ValueError:
            config = None
    return build_counter(texts[TOKENIZER], config if isinstance(config, Mapping) else None,
                         texts.get(CHAT_TEMPLATE))


@dataclass
class Counters:
    """The counters of this process, per (repo, commit), the last CACHED_TOKENIZERS used; a commit
    without a usable tokenizer is remembered as None (the byte estimate)."""

    size: int = CACHED_TOKENIZERS
    _done: OrderedDict[tuple[int, int], PromptCounter | None] = field(default_factory=OrderedDict)
    _loading: dict[tuple[int, int], asyncio.Future[PromptCounter | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _keep(self, key: tuple[int, int], counter: PromptCounter | None) -> None:
        with self._lock:
            self._done[key] = counter
            self._done.move_to_end(key)
            while len(self._done) > self.size:
                self._done.popitem(last=False)

    async def get(self, database: Any, store: Any, repo_pk: int, commit_pk: int | None) -> PromptCounter | None:
        if commit_pk is None:
            return None
        key = (repo_pk, commit_pk)
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key]
        loading = self._loading.get(key)
        if loading is not None and loading.get_loop() is not asyncio.get_running_loop():
            loading = None  # begun on another event loop (tests run several): load again on this one
        if loading is None:  # one load per key, whichever call comes first; the others wait on it
            loading = asyncio.ensure_future(to_thread.run_sync(_load, database, store, commit_pk))
            self._loading[key] = loading
            loading.add_done_callback(lambda done: self._loaded(key, done))
        try:
            return await asyncio.wait_for(asyncio.shield(loading), LOAD_WAIT_S)
        except TimeoutError:
            log.warning("the tokenizer of repo %d (commit %d) takes over %gs to load; estimating meanwhile",
                        repo_pk, commit_pk, LOAD_WAIT_S)
            return None
        except Exception:  # noqa: BLE001 (logged once by _loaded)
            return None

    def _loaded(self, key: tuple[int, int], done: asyncio.Future[PromptCounter | None]) -> None:
        if self._loading.get(key) is done:
            del self._loading[key]
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            log.warning("the tokenizer of repo %d (commit %d) does not load (%r); counting prompts with the "
                        "byte estimate", key[0], key[1], error)
        self._keep(key, None if error is not None else done.result())


counters = Counters()


async def count_prompt(counter: PromptCounter, endpoint: str, body: Mapping[str, Any], text_chars: int) -> int:
    """The prompt's tokens by `counter`, in a worker thread when the text is long."""
    if text_chars > INLINE_CHARS:
        return int(await to_thread.run_sync(counter.count, endpoint, body))
    return counter.count(endpoint, body)
