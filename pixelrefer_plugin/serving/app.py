# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The FastAPI application of `pixelrefer serve`: the OpenAI-compatible API and the web page.

Routes: `POST /v1/chat/completions` (JSON or, with `stream: true`, server-sent events), `GET /v1/models`,
`GET /health` (status and counters), `GET /` (the web page) and `/static/*` (its script).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from .cache import CachedImageProcessor, CachedVisionEncoder, FeatureCache
from .engine import BatchingEngine, EngineSettings, Event, PendingRequest, timeout_error
from .errors import RequestError
from .prefix import SharedPrefix
from .protocol import ChatRequest, RequestLimits, parse_request

logger = logging.getLogger(__name__)

STATIC = files("pixelrefer_plugin.serving") / "static"
# Seconds the handler waits past a request's deadline for the worker's own timeout event before giving up on it.
TIMEOUT_GRACE = 1.0


@dataclass(frozen=True)
class ServerSettings:
    """Everything `pixelrefer serve` sets besides the model.

    Attributes:
        model_id: the name `GET /v1/models` lists and requests may give as `model`.
        engine: batch size, batch wait, per-request timeout.
        limits: media limits (image pixels, local media folder) and `max_tokens` bounds.
        max_body_bytes: largest request body (413 above).
        cache_bytes: size of the same-image cache of preprocessed images, vision features and prompt prefixes
            (0 disables it).
    """

    model_id: str = "pixelrefer"
    engine: EngineSettings = field(default_factory=EngineSettings)
    limits: RequestLimits = field(default_factory=RequestLimits)
    max_body_bytes: int = 64 * 1024 * 1024
    cache_bytes: int = 512 * 1024 * 1024


def create_app(model: Any, processor: Any, settings: ServerSettings | None = None, segmenter: Any = None) -> FastAPI:
    """The server's ASGI app, its batching worker started. `app.state.engine` / `app.state.cache` hold the worker and
    the same-image cache of preprocessed images, vision features and prompt prefixes (their counters are what
    `GET /health` reports); the worker stops at the app's shutdown.

    With a `segmenter` (a `pixelrefer_plugin.segmentation.RegionSegmenter`), point and box regions become the masks
    it finds for them (the web page's clicks become object masks)."""
    settings = settings or ServerSettings()
    cache = FeatureCache(settings.cache_bytes)
    served_processor = processor
    if settings.cache_bytes > 0:
        CachedVisionEncoder.install(model, cache)
        served_processor = CachedImageProcessor.install(processor, cache)
    prefix = SharedPrefix(model, cache, processor.tokenizer.pad_token_id or 0)  # without a cache: once per batch
    engine = BatchingEngine(model, served_processor, settings.engine, prefix)
    engine.start()

    app = FastAPI(title="PixelRefer", on_shutdown=[engine.stop])
    app.state.engine, app.state.cache, app.state.settings = engine, cache, settings
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    _add_error_handlers(app)
    _add_info_routes(app, processor.variant, segmenter is not None)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await _read_json(request, settings.max_body_bytes)
        chat = await run_in_threadpool(parse_request, body, processor, settings.limits)
        try:
            if segmenter is not None:
                chat.regions = await run_in_threadpool(_segment, segmenter, chat)
            _check_model(body.get("model"), settings.model_id)
            pending = engine.submit(chat)
            first = await _next_event(pending)
            if first.kind == "error":
                raise first.error
        except BaseException:
            chat.close()
            raise
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if chat.stream:
            return StreamingResponse(
                _stream(pending, chat, completion_id, settings.model_id), media_type="text/event-stream"
            )
        try:
            return await _complete(pending, completion_id, settings.model_id)
        finally:
            chat.close()

    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Request errors as OpenAI-style JSON with their status; anything unexpected as a logged 500."""

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)
        return JSONResponse(RequestError(500, "internal server error").body(), status_code=500)


def _add_info_routes(app: FastAPI, variant: str, has_segmenter: bool) -> None:
    """`/` (the web page), `/health` (status and counters) and `/v1/models`."""
    engine, cache, settings = app.state.engine, app.state.cache, app.state.settings

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return (STATIC / "index.html").read_text()

    @app.get("/health")
    async def health() -> JSONResponse:
        status = "ok" if engine.alive else "worker stopped"
        return JSONResponse(
            {
                "status": status,
                "model": settings.model_id,
                "variant": variant,
                "segmenter": has_segmenter,
                "waiting": engine.waiting,
                "engine": asdict(engine.stats),
                "cache": {**asdict(cache.stats), "entries": len(cache), "bytes": cache.bytes},
            },
            status_code=200 if engine.alive else 503,
        )

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        entry = {"id": settings.model_id, "object": "model", "created": 0, "owned_by": "pixelrefer"}
        return {"object": "list", "data": [entry]}


async def _read_json(request: Request, limit: int) -> Any:
    """The request body as JSON; 413 past `limit` bytes (by Content-Length, or while reading), 400 if not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(
            413, f"the body has {declared} bytes; the server takes at most {limit}", None, "body_too_large"
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(
                413, f"the body is larger than the server's limit of {limit} bytes", None, "body_too_large"
            )
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(400, f"the body is not valid JSON ({error})", None, "invalid_json") from None


def _segment(segmenter: Any, chat: ChatRequest) -> list[dict[str, Any]]:
    """The request's regions with every point / box region replaced by the segmenter's mask."""
    from ..errors import PixelReferInputError

    try:
        return segmenter.to_masks(chat.regions, images=chat.images, videos=[str(path) for path in chat.videos])
    except PixelReferInputError as error:
        raise RequestError.from_input_error(error, chat.region_fields) from None


def _check_model(requested: Any, model_id: str) -> None:
    if requested is not None and requested != model_id:
        raise RequestError(
            400, f"model: the server serves {model_id!r}, not {requested!r}", "model", "model_not_found"
        )


async def _next_event(pending: PendingRequest) -> Event:
    """The request's next event; past its deadline (plus a grace for the worker to say so) the request is cancelled
    and a 408 raised."""
    if pending.deadline is None:
        return await pending.events.get()
    left = pending.deadline - time.monotonic() + TIMEOUT_GRACE
    try:
        return await asyncio.wait_for(pending.events.get(), max(left, 0.0))
    except asyncio.TimeoutError:
        pending.cancel()
        raise timeout_error() from None


def _chunk(completion_id: str, model_id: str, delta: dict[str, Any], finish_reason: str | None = None) -> str:
    chunk = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model_id,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


def _usage(event: Event) -> dict[str, int]:
    return {
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "total_tokens": event.prompt_tokens + event.completion_tokens,
    }


async def _stream(pending: PendingRequest, chat: ChatRequest, completion_id: str, model_id: str) -> AsyncIterator[str]:
    """Server-sent events of one request: the role, each text delta, the finish reason, usage if asked, `[DONE]`.
    A client that goes away cancels its row of the batch."""
    try:
        yield _chunk(completion_id, model_id, {"role": "assistant", "content": ""})
        while True:
            try:
                event = await _next_event(pending)
            except RequestError as error:
                event = Event("error", error=error)
            if event.kind == "delta":
                yield _chunk(completion_id, model_id, {"content": event.text})
            elif event.kind == "error":
                yield f"data: {json.dumps(event.error.body())}\n\n"
                break
            elif event.kind == "done":
                yield _chunk(completion_id, model_id, {}, event.finish_reason)
                if chat.include_usage:
                    usage = {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": model_id,
                        "choices": [],
                        "usage": _usage(event),
                    }
                    yield f"data: {json.dumps(usage)}\n\n"
                break
        yield "data: [DONE]\n\n"
    finally:
        pending.cancel()  # no effect once the row is done; frees the row when the client left mid-stream
        chat.close()


async def _complete(pending: PendingRequest, completion_id: str, model_id: str) -> dict[str, Any]:
    """The whole answer as one `chat.completion` object."""
    text = []
    while True:
        event = await _next_event(pending)
        if event.kind == "delta":
            text.append(event.text)
        elif event.kind == "error":
            raise event.error
        elif event.kind == "done":
            break
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(text)},
                "finish_reason": event.finish_reason,
            }
        ],
        "usage": _usage(event),
    }


__all__ = ["ServerSettings", "create_app"]
