"""LLM token usage read from OpenAI- and Anthropic-style responses as they pass: a JSON body, or the events of a
server-sent stream, never holding back a byte from the caller.

What is read: the model and the ``usage`` object, wherever the API puts them (``model`` and ``usage`` of a chat
completion or of its last streamed chunk; ``message.model`` / ``message.usage`` of Anthropic's ``message_start``
and ``usage`` of its ``message_delta``; ``response.model`` / ``response.usage`` of the Responses API), with
``prompt_tokens`` / ``completion_tokens`` or ``input_tokens`` / ``output_tokens``. Later values replace earlier ones
(Anthropic's output count grows with each delta).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# A JSON body kept past this size is not read for usage (LLM answers are far smaller).
MAX_JSON_BODY = 4 * 1024 * 1024
# A streamed line longer than this is skipped, not kept whole.
MAX_EVENT_LINE = 1024 * 1024
KNOWN_PROVIDERS = {"api.openai.com": "openai", "api.anthropic.com": "anthropic"}


@dataclass
class Usage:
    """What one LLM call reported: provider (by host, else by the shape of its answer), model and token counts."""

    provider: str | None = None
    response_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def absorb(self, document: object) -> None:
        """Take what one JSON object (a whole response, or one streamed event) says."""
        if not isinstance(document, dict):
            return
        inner = document
        for key in ("message", "response"):
            nested = document.get(key)
            if isinstance(nested, dict):
                inner = nested
                self._guess_provider("anthropic" if key == "message" else "openai")
        kind = str(document.get("type") or document.get("object") or "")
        if kind.startswith("message"):
            self._guess_provider("anthropic")
        elif kind.startswith(("chat.completion", "response", "text_completion")):
            self._guess_provider("openai")
        model = inner.get("model")
        if isinstance(model, str) and model:
            self.response_model = model
        for usage in (inner.get("usage"), document.get("usage") if inner is not document else None):
            if isinstance(usage, dict):
                self._take_counts(usage)

    def _take_counts(self, usage: dict[str, object]) -> None:
        if "prompt_tokens" in usage or "completion_tokens" in usage:
            self._guess_provider("openai")
        given = usage.get("prompt_tokens", usage.get("input_tokens"))
        produced = usage.get("completion_tokens", usage.get("output_tokens"))
        if isinstance(given, int) and not isinstance(given, bool) and given >= 0:
            self.input_tokens = given
        if isinstance(produced, int) and not isinstance(produced, bool) and produced >= 0:
            self.output_tokens = produced

    def _guess_provider(self, provider: str) -> None:
        if self.provider is None:
            self.provider = provider

    @property
    def reported(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None


class EventStreamReader:
    """Feeds ``usage`` the ``data:`` lines of a text/event-stream that may tell it something new, chunk by chunk;
    only the unfinished last line is kept between chunks.

    OpenAI names the model in every chunk, and with ``include_usage`` adds ``"usage":null`` to each but the last:
    parsing them all cost ~5 µs a chunk. So a line is parsed only if it has a usage that is not null, or names a
    model while none is known yet."""

    def __init__(self, usage: Usage) -> None:
        self.usage = usage
        self._partial = b""
        self._skipping = False  # inside a line too long to keep

    def feed(self, chunk: bytes) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        if self._skipping and lines:
            lines[0], self._skipping = b"", False
        if len(self._partial) > MAX_EVENT_LINE:
            self._partial, self._skipping = b"", True
        for line in lines:
            if line.startswith(b"data:") and self._may_tell(line):
                try:
                    self.usage.absorb(json.loads(line[5:].strip()))
                except ValueError:
                    continue

    def _may_tell(self, line: bytes) -> bool:
        at = line.find(b'"usage"')
        if at >= 0 and not line[at + 7 : at + 16].lstrip(b": \t").startswith(b"null"):
            return True
        return self.usage.response_model is None and b'"model"' in line

    def close(self) -> None:
        if self._partial and not self._skipping:
            self.feed(b"\n")


class JsonBodyReader:
    """Keeps a copy of a JSON body (up to MAX_JSON_BODY) and reads its usage when it ends."""

    def __init__(self, usage: Usage) -> None:
        self.usage = usage
        self._chunks: list[bytes] | None = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        if self._chunks is None:
            return
        self._size += len(chunk)
        if self._size > MAX_JSON_BODY:
            self._chunks = None
        else:
            self._chunks.append(chunk)

    def close(self) -> None:
        chunks, self._chunks = self._chunks, None
        if chunks:
            try:
                self.usage.absorb(json.loads(b"".join(chunks)))
            except ValueError:
                return


def request_model(body: bytes) -> str | None:
    """The ``model`` an LLM request names in its JSON body, if any."""
    if not body or len(body) > MAX_JSON_BODY or b'"model"' not in body:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    model = document.get("model") if isinstance(document, dict) else None
    return model if isinstance(model, str) and model else None


def operation_name(path: str) -> str:
    """The GenAI operation an API path performs: ``embeddings``, ``text_completion`` or ``chat``."""
    if path.endswith("/embeddings"):
        return "embeddings"
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        return "text_completion"
    return "chat"


class Prices:
    """Prices per million input and output tokens by model: the exact name's, else the longest listed prefix's
    (``gpt-4o`` prices ``gpt-4o-2024-08-06``)."""

    def __init__(self, table: dict[str, tuple[float, float]]) -> None:
        self._table = table
        self._by_length = sorted(table, key=len, reverse=True)

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        price = self._table.get(model)
        if price is None:
            prefix = next((name for name in self._by_length if model.startswith(name)), None)
            if prefix is None:
                return None
            price = self._table[prefix]
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000
