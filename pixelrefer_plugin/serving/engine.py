# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The batching engine: concurrent requests gathered into one `generate()`, each row streamed to its own client.

One worker thread owns the model. It takes the oldest waiting request, waits up to `batch_wait` seconds for up to
`max_batch_size - 1` more that decode the same way (greedy requests together; sampled ones with the same temperature
and top-p; a request with a seed alone, so that its seed decides its answer), runs the processor on them as one batch
and calls `generate()` once (after running the prompt prefix the rows share once, `prefix.py`). A streamer hands each
row's new tokens to its request, one event-loop wake-up per decoding step; a stopping criterion ends a row when its
request reached `max_tokens` or a `stop` string, was cancelled (client gone) or timed out, so a finished row never
holds the others back and never sees their tokens. A bad request in a batch (the processor refuses it) gets
its error alone; the others run.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import StoppingCriteria

from ..errors import PixelReferInputError
from .errors import RequestError
from .prefix import SharedPrefix
from .protocol import ChatRequest

logger = logging.getLogger(__name__)


@dataclass
class EngineSettings:
    """Attributes: max_batch_size: most requests per `generate()`; batch_wait: seconds the oldest waiting request
    waits for others to join its batch; request_timeout: seconds from arrival to the last token (None: no limit)."""

    max_batch_size: int = 8
    batch_wait: float = 0.01
    request_timeout: float | None = 300.0


@dataclass
class EngineStats:
    """Counters reported by `GET /health`; `*_seconds` are the worker's wall time in the processor, in the shared
    prompt prefix and in `generate()`, summed over batches."""

    requests: int = 0
    batches: int = 0
    batched_requests: int = 0
    largest_batch: int = 0
    cancelled: int = 0
    timed_out: int = 0
    failed: int = 0
    processor_seconds: float = 0.0
    prefix_seconds: float = 0.0
    generate_seconds: float = 0.0


@dataclass
class Event:
    """What a request's queue receives: `delta` text, then `done` (with `finish_reason` and token counts), or
    `error`; `started` once its batch passed the processor."""

    kind: str
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: RequestError | None = None


_SEQUENCE = itertools.count()


@dataclass
class PendingRequest:
    """A request between the HTTP handler (asyncio) and the worker thread."""

    request: ChatRequest
    loop: asyncio.AbstractEventLoop
    deadline: float | None
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=time.monotonic)
    number: int = field(default_factory=lambda: next(_SEQUENCE))

    @property
    def batch_key(self) -> Hashable:
        """Requests with the same key may share a `generate()` call."""
        options = self.request.options
        if options.greedy:
            return ("greedy",)
        if options.seed is not None:
            return ("seeded", self.number)
        return ("sample", options.temperature, options.top_p)

    def send(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def cancel(self) -> None:
        self.cancelled.set()

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now > self.deadline


def send_all(outbox: list[tuple[PendingRequest, Event]]) -> None:
    """Deliver the events of several requests with one wake-up of each event loop they live on (not one per event:
    on a small CPU the wake-ups of 8 rows x every token cost as much as the decoding)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[PendingRequest, Event]]] = {}
    for pending, event in outbox:
        by_loop.setdefault(pending.loop, []).append((pending, event))
    for loop, events in by_loop.items():
        loop.call_soon_threadsafe(_put_all, events)


def _put_all(events: list[tuple[PendingRequest, Event]]) -> None:
    for pending, event in events:
        pending.events.put_nowait(event)


class _Row:
    """Decoding state of one request in a running batch."""

    def __init__(self, pending: PendingRequest, prompt_tokens: int):
        self.pending = pending
        self.prompt_tokens = prompt_tokens
        self.tokens: list[int] = []
        self.sent = 0  # characters of the stripped answer already sent
        self.finish_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


class BatchStreamer:
    """The `streamer` of one batched `generate()`: new tokens of each row, decoded into that row's request only.

    The answer a request receives is the decoded text stripped of surrounding whitespace (as `pixelrefer describe`
    prints it) and cut before a `stop` string; trailing whitespace, a partial UTF-8 character and a possible start of a
    stop string are held back until the text that follows shows what they are.
    """

    def __init__(self, tokenizer: Any, rows: list[_Row], eos_token_ids: set[int]):
        self.tokenizer = tokenizer
        self.rows = rows
        self.eos_token_ids = eos_token_ids
        self._prompt_seen = False
        self._outbox: list[tuple[PendingRequest, Event]] = []  # the events of one decoding step, sent together

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first passes the prompt
            self._prompt_seen = True
            return
        for row, token in zip(self.rows, value.tolist(), strict=True):
            if row.done:
                continue
            if token in self.eos_token_ids:
                self._finish(row, "stop")
                continue
            row.tokens.append(token)
            self._emit(row)
            if not row.done and len(row.tokens) >= row.pending.request.options.max_tokens:
                self._finish(row, "length")
        self._flush()

    def end(self) -> None:
        for row in self.rows:
            if not row.done:
                self._finish(row, "length")
        self._flush()

    def _flush(self) -> None:
        if self._outbox:
            send_all(self._outbox)
            self._outbox = []

    def _text(self, row: _Row) -> tuple[str, bool]:
        """The row's answer so far and whether a stop string ended it."""
        text = self.tokenizer.decode(row.tokens, skip_special_tokens=True).lstrip()
        stops = [text.find(stop) for stop in row.pending.request.options.stop]
        cut = min((index for index in stops if index >= 0), default=-1)
        return (text[:cut], True) if cut >= 0 else (text, False)

    def _emit(self, row: _Row, final: bool = False) -> None:
        text, stopped = self._text(row)
        ready = text.rstrip() if final or stopped else _settled(text, row.pending.request.options.stop)
        if len(ready) > row.sent:
            self._outbox.append((row.pending, Event("delta", text=ready[row.sent :])))
            row.sent = len(ready)
        if stopped and not row.done:
            self._finish(row, "stop")

    def _finish(self, row: _Row, reason: str) -> None:
        row.finish_reason = reason
        if reason in ("stop", "length"):
            self._emit(row, final=True)
        done = Event("done", finish_reason=reason, prompt_tokens=row.prompt_tokens, completion_tokens=len(row.tokens))
        self._outbox.append((row.pending, done))


def _settled(text: str, stops: tuple[str, ...]) -> str:
    """The part of a growing answer that later tokens cannot change: no trailing whitespace or replacement character
    (a partial UTF-8 sequence), nor a tail that may begin a stop string."""
    text = text.rstrip().rstrip("\ufffd").rstrip()
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                text = text[:-size].rstrip()
                break
    return text


class RowStops(StoppingCriteria):
    """Ends the rows whose request is done, cancelled or past its deadline (a per-row verdict, as `generate()`
    expects)."""

    def __init__(self, rows: list[_Row], stats: EngineStats):
        self.rows = rows
        self.stats = stats

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        now = time.monotonic()
        for row in self.rows:
            if row.done:
                continue
            if row.pending.cancelled.is_set():
                row.finish_reason = "cancelled"
                self.stats.cancelled += 1
            elif row.pending.expired(now):
                row.finish_reason = "timeout"
                self.stats.timed_out += 1
                row.pending.send(Event("error", error=timeout_error()))
        return torch.tensor([row.done for row in self.rows], device=input_ids.device)


def timeout_error() -> RequestError:
    return RequestError(408, "the request ran past the server's per-request timeout", None, "timeout")


class BatchingEngine:
    """The worker thread that owns the model (see the module docstring).

    Args:
        model: a PixelRefer model in eval mode.
        processor: its processor.
        settings: batch size, batch wait and timeout.
        prefix: runs the prompt prefix the rows of a batch share once (None: every row reads its whole prompt).
    """

    def __init__(self, model: Any, processor: Any, settings: EngineSettings, prefix: SharedPrefix | None = None):
        self.model = model
        self.processor = processor
        self.settings = settings
        self.prefix = prefix
        self.stats = EngineStats()
        eos = model.generation_config.eos_token_id
        self.eos_token_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        self._waiting: list[PendingRequest] = []
        self._condition = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="pixelrefer-batching", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._condition:
            self._running = False
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def submit(self, request: ChatRequest) -> PendingRequest:
        """Queue `request`; its events arrive on the returned object's `events` queue (call from the event loop)."""
        timeout = self.settings.request_timeout
        pending = PendingRequest(
            request, asyncio.get_running_loop(), None if timeout is None else time.monotonic() + timeout
        )
        with self._condition:
            self.stats.requests += 1
            self._waiting.append(pending)
            self._condition.notify_all()
        return pending

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._run(batch)
            except Exception:  # the worker survives anything a batch does
                logger.exception("a batch of %d request(s) failed", len(batch))
                self.stats.failed += len(batch)
                for pending in batch:
                    pending.send(Event("error", error=RequestError(500, "the model failed on this batch", None)))

    def _next_batch(self) -> list[PendingRequest] | None:
        """The oldest waiting request and up to `max_batch_size - 1` others with its batch key, after waiting at most
        `batch_wait` from its arrival for the batch to fill."""
        with self._condition:
            while self._running and not self._waiting:
                self._condition.wait()
            if not self._running:
                return None
            key = self._waiting[0].batch_key
            start = self._waiting[0].arrived
            while self._running:
                same = [pending for pending in self._waiting if pending.batch_key == key]
                left = start + self.settings.batch_wait - time.monotonic()
                if len(same) >= self.settings.max_batch_size or left <= 0:
                    break
                self._condition.wait(left)
            batch = same[: self.settings.max_batch_size]
            for pending in batch:
                self._waiting.remove(pending)
        now = time.monotonic()
        live = []
        for pending in batch:
            if pending.cancelled.is_set():
                self.stats.cancelled += 1
            elif pending.expired(now):
                self.stats.timed_out += 1
                pending.send(Event("error", error=timeout_error()))
            else:
                live.append(pending)
        return live

    def _run(self, batch: list[PendingRequest]) -> None:
        start = time.perf_counter()
        inputs, batch = self._inputs(batch)
        self.stats.processor_seconds += time.perf_counter() - start
        if not batch:
            return
        self.stats.batches += 1
        self.stats.batched_requests += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        rows = [_Row(pending, int(n)) for pending, n in zip(batch, prompt_tokens, strict=True)]
        send_all([(pending, Event("started")) for pending in batch])
        options = batch[0].request.options
        sampling: dict[str, Any] = {"do_sample": False}
        if not options.greedy:
            sampling = {"do_sample": True, "temperature": options.temperature, "top_p": options.top_p, "top_k": 0}
            if options.seed is not None:
                torch.manual_seed(options.seed)
        streamer = BatchStreamer(self.processor.tokenizer, rows, self.eos_token_ids)
        start = time.perf_counter()
        inputs = inputs.to(self.model.device)
        if self.prefix is not None:
            inputs = self.prefix.generate_inputs(inputs)
        self.stats.prefix_seconds += time.perf_counter() - start
        start = time.perf_counter()
        with torch.inference_mode():
            self.model.generate(
                **inputs,
                max_new_tokens=max(pending.request.options.max_tokens for pending in batch),
                num_beams=1,
                streamer=streamer,
                stopping_criteria=[RowStops(rows, self.stats)],
                **sampling,
            )
        self.stats.generate_seconds += time.perf_counter() - start

    def _inputs(self, batch: list[PendingRequest]) -> tuple[Any, list[PendingRequest]]:
        """The processor's inputs of the batch; a request the processor refuses gets its 400 and leaves the batch."""
        try:
            return self._process([pending.request for pending in batch]), batch
        except PixelReferInputError as error:
            if len(batch) == 1:
                batch[0].send(
                    Event("error", error=RequestError.from_input_error(error, batch[0].request.region_fields))
                )
                return None, []
        good = []
        for pending in batch:  # find the request(s) at fault
            try:
                self._process([pending.request])
                good.append(pending)
            except PixelReferInputError as error:
                pending.send(Event("error", error=RequestError.from_input_error(error, pending.request.region_fields)))
        return (self._process([pending.request for pending in good]) if good else None), good

    def _process(self, requests: list[ChatRequest]) -> Any:
        return self.processor(
            text=[request.prompt for request in requests],
            images=[request.images or None for request in requests],
            videos=[[str(path) for path in request.videos] or None for request in requests],
            regions=[request.regions for request in requests],
        )


__all__ = ["BatchStreamer", "BatchingEngine", "EngineSettings", "EngineStats", "Event", "PendingRequest", "RowStops"]
