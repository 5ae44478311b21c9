"""A local server speaking an OpenAI-compatible API and an Anthropic-style one, JSON and server-sent events, with
token usage; plus ``/slow`` (answers after ``?seconds=``) and ``/status/{code}``. Served by a real uvicorn in tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

CHUNK_DELAY = 0.1  # between streamed events, so tests can see chunks arrive as they are sent
WORDS = ["Hello", " from", " the", " model"]


def _sse(document: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(document)}\n\n".encode()


async def chat_completions(request: Request) -> Response:
    body = await request.json()
    model = body["model"]
    served = model + "-2026-01-01"
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", [])) + 7
    if not body.get("stream"):
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": served,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(WORDS)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 4, "total_tokens": prompt_tokens + 4},
            }
        )
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    async def events() -> AsyncIterator[bytes]:
        for word in WORDS:
            chunk = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": served,
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }
            yield _sse(chunk)
            await asyncio.sleep(CHUNK_DELAY)
        if include_usage:
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(WORDS), "total_tokens": 0}
            yield _sse(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": served,
                    "choices": [],
                    "usage": usage,
                }
            )
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def messages(request: Request) -> Response:
    body = await request.json()
    model = body["model"]
    if not body.get("stream"):
        return JSONResponse(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": "".join(WORDS)}],
                "usage": {"input_tokens": 21, "output_tokens": 9},
            }
        )

    async def events() -> AsyncIterator[bytes]:
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "model": model,
                "usage": {"input_tokens": 21, "output_tokens": 1},
            },
        }
        yield _sse(start, "message_start")
        for word in WORDS:
            await asyncio.sleep(CHUNK_DELAY)
            yield _sse(
                {"type": "content_block_delta", "delta": {"type": "text_delta", "text": word}}, "content_block_delta"
            )
        yield _sse(
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 12}},
            "message_delta",
        )
        yield _sse({"type": "message_stop"}, "message_stop")

    return StreamingResponse(events(), media_type="text/event-stream")


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("seconds", "0.2")))
    return PlainTextResponse("slow answer")


async def status(request: Request) -> Response:
    code = int(request.path_params["code"])
    return Response(status_code=code) if code in (204, 304) else PlainTextResponse("status", status_code=code)


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/slow", slow),
        Route("/status/{code:int}", status),
    ]
)
