"""Reading LLM usage from bodies and event streams: split anywhere, bounded, by either API's shape."""

from __future__ import annotations

import json

import pytest

from slipstream.outbound.llm import (
    MAX_EVENT_LINE,
    MAX_JSON_BODY,
    EventStreamReader,
    JsonBodyReader,
    Prices,
    Usage,
    operation_name,
    request_model,
)

OPENAI_LAST = (
    b'data: {"object":"chat.completion.chunk","model":"m-1","choices":[],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":7}}\n\n'
)
ANTHROPIC = (
    b'event: message_start\ndata: {"type":"message_start",'
    b'"message":{"model":"c-1","usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":11}}\n\n'
)


@pytest.mark.parametrize("size", [1, 2, 7, 64, 10_000])
def test_an_event_stream_split_anywhere_reads_the_same(size: int) -> None:
    for stream, expected in [
        (b"data: [DONE]\n\n".join([b'data: {"choices":[]}\n\n', OPENAI_LAST]), Usage("openai", "m-1", 5, 7)),
        (ANTHROPIC.replace(b"\n", b"\r\n"), Usage("anthropic", "c-1", 3, 11)),
    ]:
        usage = Usage()
        reader = EventStreamReader(usage)
        for start in range(0, len(stream), size):
            reader.feed(stream[start : start + size])
        reader.close()
        assert usage == expected


def test_an_overlong_line_is_skipped_not_kept() -> None:
    usage = Usage()
    reader = EventStreamReader(usage)
    reader.feed(b"data: " + b"x" * (MAX_EVENT_LINE + 10))
    assert len(reader._partial) == 0
    reader.feed(b"y" * 100 + b"\n" + OPENAI_LAST)  # the rest of the long line is dropped; the next one is read
    assert (usage.input_tokens, usage.output_tokens) == (5, 7)


class CountingUsage(Usage):
    """A Usage that counts the JSON documents it was given."""

    absorbed = 0

    def absorb(self, document: object) -> None:
        self.absorbed += 1
        super().absorb(document)


@pytest.mark.parametrize("spacing", [b"", b" "])
def test_only_events_that_may_say_something_new_are_parsed(spacing: bytes) -> None:
    # OpenAI with include_usage: the model and "usage": null on every chunk, the counts on the last one.
    chunk = b'data: {"object":"chat.completion.chunk","model":"m-1","choices":[{"delta":{"content":"hi"}}],"usage"'
    usage = CountingUsage()
    reader = EventStreamReader(usage)
    for _ in range(20):
        reader.feed(chunk + b":" + spacing + b"null}\n\n")
    reader.feed(OPENAI_LAST + b"data: [DONE]\n\n")
    reader.close()
    assert (usage.provider, usage.response_model, usage.input_tokens, usage.output_tokens) == ("openai", "m-1", 5, 7)
    assert usage.absorbed == 2  # the first chunk, for the model, and the last, for the counts


def test_a_json_body_is_read_whole_and_bounded() -> None:
    usage = Usage()
    reader = JsonBodyReader(usage)
    body = json.dumps({"type": "message", "model": "c-2", "usage": {"input_tokens": 4, "output_tokens": 2}}).encode()
    reader.feed(body[:10])
    reader.feed(body[10:])
    reader.close()
    assert usage == Usage("anthropic", "c-2", 4, 2)
    big = Usage()
    too_big = JsonBodyReader(big)
    too_big.feed(b" " * (MAX_JSON_BODY + 1))
    too_big.feed(body)
    too_big.close()
    assert not big.reported


@pytest.mark.parametrize(
    "document",
    [
        {"usage": {"prompt_tokens": "5"}},
        {"usage": {"prompt_tokens": -1}},
        {"usage": {"prompt_tokens": True}},
        {"usage": None},
        [1, 2],
        "text",
    ],
)
def test_odd_usage_values_are_ignored(document: object) -> None:
    usage = Usage()
    usage.absorb(document)
    assert not usage.reported


def test_the_responses_api_shape() -> None:
    usage = Usage()
    usage.absorb(
        {"type": "response.completed", "response": {"model": "m-2", "usage": {"input_tokens": 8, "output_tokens": 3}}}
    )
    assert usage == Usage("openai", "m-2", 8, 3)


def test_request_model_and_operation() -> None:
    assert request_model(b'{"model": "gpt-x", "messages": []}') == "gpt-x"
    assert request_model(b"not json") is None and request_model(b'{"model": 3}') is None and request_model(b"") is None
    assert [
        operation_name(p) for p in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages")
    ] == [
        "chat",
        "text_completion",
        "embeddings",
        "chat",
    ]


def test_prices_by_exact_name_then_longest_prefix() -> None:
    prices = Prices({"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6)})
    assert prices.cost("gpt-4o-2024-08-06", 1_000_000, 0) == 2.5
    assert prices.cost("gpt-4o-mini-2024-07-18", 0, 1_000_000) == 0.6
    assert prices.cost("claude", 10, 10) is None
