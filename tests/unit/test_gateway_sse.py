"""The gateway's SSE relay (`SseEvents`): events cut as bytes arrive, usage noted and passed on
only when the client asked for it, content counted for the estimate of a cut stream."""

from __future__ import annotations

import json

import pytest

from releasehub.gateway.proxy import SseEvents


def chunk(content: str | None = None, usage: dict | None | str = "absent", choices: bool = True,
          role: str | None = None) -> bytes:
    body: dict = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
    delta: dict = {"role": role} if role else {}
    if content is not None:
        delta["content"] = content
    body["choices"] = [{"index": 0, "delta": delta}] if choices else []
    if usage != "absent":
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


USAGE = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
STREAM = (chunk("", usage=None, role="assistant") + chunk("Hello", usage=None) + chunk(" world", usage=None)
          + chunk(usage=USAGE, choices=False) + b"data: [DONE]\n\n")


def relay(pieces: list[bytes], wants_usage: bool) -> tuple[bytes, SseEvents]:
    events = SseEvents(wants_usage=wants_usage)
    out = b"".join(events.feed(p) for p in pieces) + events.end()
    return out, events


def data_lines(out: bytes) -> list[str]:
    return [e.decode()[len("data: "):] for e in out.split(b"\n\n") if e]


@pytest.mark.parametrize("size", [1, 2, 7, 64, 10_000])
def test_any_cut_of_the_bytes_gives_the_same_events(size: int) -> None:
    pieces = [STREAM[i:i + size] for i in range(0, len(STREAM), size)]
    out, events = relay(pieces, wants_usage=True)
    assert out == STREAM
    assert events.usage == (7, 2)
    assert events.content_chunks == 2  # the empty first delta is not a token


def test_usage_chunk_dropped_when_the_client_did_not_ask() -> None:
    out, events = relay([STREAM], wants_usage=False)
    lines = data_lines(out)
    assert lines[-1] == "[DONE]"
    assert not any('"usage": {' in line for line in lines)
    assert [json.loads(x)["choices"][0]["delta"].get("content") for x in lines[:-1]] == ["", "Hello", " world"]
    assert events.usage == (7, 2)  # noted for settlement all the same


def test_usage_on_a_chunk_with_choices_is_stripped_not_dropped() -> None:
    stream = chunk("Hi", usage=USAGE) + b"data: [DONE]\n\n"
    out, events = relay([stream], wants_usage=False)
    first = json.loads(data_lines(out)[0])
    assert "usage" not in first and first["choices"][0]["delta"]["content"] == "Hi"
    assert events.usage == (7, 2)


def test_crlf_line_endings_split_across_reads() -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    pieces = [crlf[i:i + 3] for i in range(0, len(crlf), 3)]  # "\r" and "\n" land in different reads
    out, events = relay(pieces, wants_usage=True)
    assert out == STREAM
    assert events.usage == (7, 2)


def test_a_cut_stream_has_no_usage_but_counts_content() -> None:
    out, events = relay([chunk("a", usage=None) + chunk("b", usage=None) + b'data: {"id": "c1", "cho'],
                        wants_usage=False)
    assert events.usage is None and events.content_chunks == 2
    assert out.endswith(b'data: {"id": "c1", "cho\n\n')  # the partial event is passed on as received


def test_comments_and_other_fields_pass_through() -> None:
    stream = b": keep-alive\n\nevent: ping\ndata: {}\n\n" + chunk("x")
    out, events = relay([stream], wants_usage=False)
    assert out == stream
    assert events.content_chunks == 1 and events.usage is None


def test_completions_text_counts_as_content() -> None:
    stream = b'data: {"choices": [{"text": "tok", "index": 0}], "usage": null}\n\n'
    out, events = relay([stream], wants_usage=False)
    assert out == stream and events.content_chunks == 1


def test_an_empty_delta_without_a_role_is_a_token() -> None:
    """vLLM sends `"content":""` for a token that ends inside a UTF-8 character; a stream cut after it
    must still be charged for it. The first delta (with the role) is no token."""
    stream = (b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
              b'data: {"choices":[{"delta":{"content":""}}]}\n\n'
              b'data: {"choices":[{"delta":{"content":"\\u00e9"}}]}\n\n')
    _, events = relay([stream], wants_usage=False)
    assert events.content_chunks == 2 and events.usage is None


def test_done_is_noted() -> None:
    """A client that hangs up after [DONE] got the whole answer: the relay notes it (a finished call)."""
    _, events = relay([STREAM[:-len(b"data: [DONE]\n\n")]], wants_usage=True)
    assert not events.done
    _, events = relay([STREAM], wants_usage=True)
    assert events.done and events.usage == (7, 2)
