"""A stand-in LLM API for the demo: OpenAI-style chat completions with token usage, answered after a short delay,
with no network and no key.

The demo reaches it through an httpx client whose transport calls this app in process (``httpx.ASGITransport``)
at a made-up host, which the demo lists in ``gen_ai_hosts``: to slipstream it is a remote LLM API like any other.
``?overloaded=1`` makes it answer 503, as a busy API does, so the upstream error panels and alert have something to
show.
"""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HOST = "model.demo.internal"
MODEL = "demo-mini"
# What the model says it is: a dated snapshot of the model asked for, as the real APIs answer.
SNAPSHOT = f"{MODEL}-2025-06-01"
# Per million input and output tokens (gen_ai_prices); the prefix prices the snapshot too.
PRICE = f"{MODEL}=0.15/0.6"
DELAY = 0.05
# Tokens a chat format adds to the prompt's words (roles, separators).
FORMAT_TOKENS = 8


async def chat_completions(request: Request) -> Response:
    if "overloaded" in request.query_params:
        error = {"message": "The model is overloaded, try again later", "type": "server_error"}
        return JSONResponse({"error": error}, status_code=503, headers={"retry-after": "1"})
    body = await request.json()
    prompt = " ".join(str(message.get("content", "")) for message in body.get("messages", []))
    answer = f"You asked {len(prompt.split())} words; this stand-in answers every question the same way."
    await asyncio.sleep(DELAY)
    input_tokens, output_tokens = len(prompt.split()) + FORMAT_TOKENS, len(answer.split())
    return JSONResponse(
        {
            "id": "chatcmpl-demo",
            "object": "chat.completion",
            "created": 0,
            "model": SNAPSHOT if body.get("model") == MODEL else body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        }
    )


model_app = Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])


def model_client() -> httpx.AsyncClient:
    """An httpx client for the stand-in: addressed as ``http://model.demo.internal``, served in process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=model_app), base_url=f"http://{HOST}", timeout=10)


async def ask(client: httpx.AsyncClient, question: str, *, overloaded: bool = False) -> httpx.Response:
    """One chat completion; ``overloaded`` asks the stand-in to fail with 503."""
    messages = [{"role": "user", "content": question}]
    params = {"overloaded": "1"} if overloaded else {}
    return await client.post("/v1/chat/completions", params=params, json={"model": MODEL, "messages": messages})
