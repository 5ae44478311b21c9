"""The API bench_outbound.py calls, served by a real uvicorn in a process of its own: a small JSON document, and an
OpenAI-style chat completion answered as JSON or as a server-sent stream, both with token usage.

Every answer is built once, at import: the server's work is the same whoever calls, and it is not in the client's
process, so it costs the figures nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

ITEM_PATH, CHAT_PATH = "/items/42", "/v1/chat/completions"
MODEL, SERVED_MODEL = "gpt-4o-mini", "gpt-4o-mini-2024-07-18"
STREAMED_WORDS = 30  # content events in a streamed answer, before the usage event and [DONE]
INPUT_TOKENS, OUTPUT_TOKENS = 41, STREAMED_WORDS
ANSWER = "Espresso cups are best warmed before use: rinse them with hot water, then dry them. " * 2


def request_body(stream: bool) -> bytes:
    """What an OpenAI SDK sends for a short chat (as bytes, built once: the client's cost is the same for all)."""
    document: dict[str, object] = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You answer questions about kitchenware in two sentences."},
            {"role": "user", "content": "How should I look after glazed stoneware espresso cups?"},
        ],
        "max_tokens": 200,
    }
    if stream:
        document |= {"stream": True, "stream_options": {"include_usage": True}}
    return json.dumps(document, separators=(",", ":")).encode()


ITEM = json.dumps(
    {"id": 42, "sku": "SKU-00042", "name": "Espresso cup, glazed stoneware, 90 ml", "price": 12.5, "currency": "EUR",
     "stock": 148, "tags": ["kitchen", "ceramics", "coffee"], "updated_at": "2024-06-11T12:00:00Z",
     "ratings": {"count": 211, "mean": 4.6}}
).encode()  # fmt: skip
USAGE = {
    "prompt_tokens": INPUT_TOKENS,
    "completion_tokens": OUTPUT_TOKENS,
    "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
}
COMPLETION = json.dumps(
    {"id": "chatcmpl-bench", "object": "chat.completion", "created": 1718100000, "model": SERVED_MODEL,
     "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
     "usage": USAGE, "system_fingerprint": "fp_bench"}
).encode()  # fmt: skip


def _chunk(delta: dict[str, str], finish: str | None, usage: object = None, choices: bool = True) -> bytes:
    # With include_usage, OpenAI puts "usage": null on every chunk and the counts on an extra last one.
    document = {
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1718100000, "model": SERVED_MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
        "usage": usage,
    }  # fmt: skip
    return f"data: {json.dumps(document, separators=(',', ':'))}\n\n".encode()


WORDS = ANSWER.split(" ")
EVENTS = [
    _chunk({"role": "assistant", "content": ""}, None),
    *(_chunk({"content": f"{WORDS[i % len(WORDS)]} "}, None) for i in range(STREAMED_WORDS)),
    _chunk({}, "stop"),
    _chunk({}, None, USAGE, choices=False),
    b"data: [DONE]\n\n",
]


async def item(request: Request) -> Response:
    return Response(ITEM, media_type="application/json")


async def chat_completions(request: Request) -> Response:
    body = await request.body()
    if b'"stream":true' not in body:
        return Response(COMPLETION, media_type="application/json")

    async def events() -> AsyncIterator[bytes]:
        for event in EVENTS:
            yield event

    return StreamingResponse(events(), media_type="text/event-stream")


def create_app() -> Starlette:
    """uvicorn's factory: ``uvicorn --factory --app-dir bench outbound_server:create_app``."""
    return Starlette(routes=[Route(ITEM_PATH, item), Route(CHAT_PATH, chat_completions, methods=["POST"])])
