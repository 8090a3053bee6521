# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Benchmark: `pixelrefer serve` under 16 concurrent clients on loopback, batched vs one request at a time.

Builds the tiny preset in memory with its weights redrawn at unit gain (so answers differ between requests), computes
every request's greedy answer one by one with `generate()`, then serves the model with uvicorn on a free loopback port
twice, with `--max-batch-size 16` and with `--max-batch-size 1`, and sends the same requests from `--clients`
concurrent clients (each `--requests` requests in turn, different scenes, regions and questions). It prints requests
per second of both servers and their ratio, p50 / p95 latency, and counts answers that are lost or differ from their
own one-by-one answer (exit 1 if any). Then, on the batching server, it times 8 concurrent questions about one image
(8 different regions) against 1 question, cold cache each time (median of `--repeats`), and prints the cost ratio
(target <= 1.5x) in wall time and in CPU time, and where the worker's time went (processor, shared prompt prefix,
`generate()`). Bounded: a fixed number of requests, each with a timeout.

    .venv/bin/python benchmarks/serve.py [--clients 16] [--requests 4] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import io
import logging
import socket
import statistics
import sys
import threading
import time

import httpx
import numpy as np
import torch
import uvicorn
from common import add_common_arguments
from PIL import Image

from pixelrefer_plugin.describe import describe_prompt
from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.serving import EngineSettings, ServerSettings, create_app
from pixelrefer_plugin.synthetic import make_scene

logger = logging.getLogger("benchmarks.serve")

SAME_IMAGE_TARGET = 1.5
QUESTIONS = ("What is <region>?", "Describe <region> in detail.", "What colour is <region>?", "Where is <region>?")


def unit_gain_model(preset: str, seed: int):
    """The preset, random init, matrices redrawn with std 2 / sqrt(fan_in): answers depend on the input."""
    model, processor = build_model_and_processor(preset, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim >= 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 2.0 / parameter.shape[-1] ** 0.5)
    return model.eval(), processor


def data_url(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def make_requests(count: int, max_tokens: int, seed: int) -> list[tuple[dict, np.ndarray, dict, str]]:
    """`count` requests (body, image, region, question) over 8 scenes, their objects and 4 questions."""
    scenes = [make_scene(np.random.default_rng(seed + i), size=(160, 224), num_objects=3) for i in range(8)]
    urls = [data_url(image) for image, _ in scenes]
    requests = []
    for index in range(count):
        image, objects = scenes[index % 8]
        region = {"box": list(objects[(index // 8) % 3].box)}
        question = QUESTIONS[(index // 24) % 4 if count > 24 else index % 4]
        content = [{"type": "image_url", "image_url": {"url": urls[index % 8]}}, {"type": "text", "text": question}]
        body = {"messages": [{"role": "user", "content": content}], "regions": [region], "max_tokens": max_tokens}
        requests.append((body, image, region, question))
    return requests


def greedy_answer(model, processor, image, region, question, max_tokens) -> str:
    inputs = processor(text=describe_prompt(processor, question, False), images=image, regions=[region])
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
    return processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


class Server:
    """uvicorn serving `app` on a free loopback port, in a thread."""

    def __init__(self, app):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


async def run_clients(url: str, bodies: list[dict], clients: int, timeout: float) -> tuple[list, list[float], float]:
    """Each client sends its share of `bodies` in turn; (answers in order, latencies, wall seconds)."""
    answers: list[str | None] = [None] * len(bodies)
    latencies: list[float] = []

    async def client(index: int, http: httpx.AsyncClient) -> None:
        for number in range(index, len(bodies), clients):
            start = time.perf_counter()
            response = await http.post(url + "/v1/chat/completions", json=bodies[number])
            latencies.append(time.perf_counter() - start)
            if response.status_code == 200:
                answers[number] = response.json()["choices"][0]["message"]["content"]

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        return answers, latencies, time.perf_counter() - start


def serve(model, processor, max_batch_size: int, batch_wait: float):
    model.model.__dict__.pop("encode_packed", None)  # a fresh feature cache per server
    settings = ServerSettings(
        model_id="tiny", engine=EngineSettings(max_batch_size=max_batch_size, batch_wait=batch_wait)
    )
    return create_app(model, processor, settings)


def module_timers(modules: dict[str, torch.nn.Module]) -> dict[str, float]:
    """Seconds spent in each module's forward, summed by name until the returned dict is cleared."""
    spent: dict[str, float] = {}
    for name, module in modules.items():
        starts: list[float] = []
        module.register_forward_pre_hook(lambda *_, starts=starts: starts.append(time.perf_counter()))

        def stop(*_, name=name, starts=starts) -> None:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - starts.pop()

        module.register_forward_hook(stop)
    return spent


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, "same-image measurement")
    parser.add_argument("--preset", default="pixelrefer-tiny")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4, help="requests per client")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--batch-wait-ms", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, processor = unit_gain_model(args.preset, args.seed)
    model.to(args.device)

    requests = make_requests(args.clients * args.requests, args.max_tokens, args.seed)
    start = time.perf_counter()
    expected = [greedy_answer(model, processor, *request[1:], args.max_tokens) for request in requests]
    print(f"{len(requests)} requests, one-by-one greedy references in {time.perf_counter() - start:.1f} s")
    bodies = [request[0] for request in requests]

    results = {}
    for batch_size in (args.clients, 1):
        app = serve(model, processor, batch_size, args.batch_wait_ms / 1000)
        with Server(app) as url:
            asyncio.run(run_clients(url, bodies[: args.clients], args.clients, args.timeout))  # warm-up
            answers, latencies, seconds = asyncio.run(run_clients(url, bodies, args.clients, args.timeout))
        app.state.engine.stop()
        lost = sum(answer is None for answer in answers)
        wrong = sum(
            answer is not None and answer != reference for answer, reference in zip(answers, expected, strict=True)
        )
        stats = app.state.engine.stats
        results[batch_size] = len(bodies) / seconds
        print(
            f"--max-batch-size {batch_size:>2}: {len(bodies) / seconds:6.1f} requests/s, latency p50 "
            f"{percentile(latencies, 50) * 1000:6.0f} ms, p95 {percentile(latencies, 95) * 1000:6.0f} ms, "
            f"{stats.batches} batches (largest {stats.largest_batch}), lost {lost}, differing from one-by-one {wrong}"
        )
        if lost or wrong:
            return 1
    print(f"throughput ratio batched / one at a time: {results[args.clients] / results[1]:.2f}x")

    image, objects = make_scene(np.random.default_rng(args.seed + 100), size=(160, 224), num_objects=3)
    url_image = data_url(image)
    same = []
    for index in range(8):
        content = [
            {"type": "image_url", "image_url": {"url": url_image}},
            {"type": "text", "text": QUESTIONS[index % 4]},
        ]
        region = {"box": list(objects[index % 3].box)} if index < 3 else {"point": [20 + 10 * index, 40]}
        same.append(
            {"messages": [{"role": "user", "content": content}], "regions": [region], "max_tokens": args.max_tokens}
        )
    app = serve(model, processor, 16, args.batch_wait_ms / 1000)
    modules = module_timers({"vision": model.model.vision_model, "language": model.model.language_model})
    stages = ("wall", "cpu", "processor", "prefix", "generate", "vision", "language")
    times: dict[int, dict[str, list[float]]] = {count: {stage: [] for stage in stages} for count in (1, 8)}
    with Server(app) as url:
        for repeat in range(args.warmup + args.repeats):
            for count in (1, 8):
                app.state.cache.clear()
                before, cpu = dataclasses.replace(app.state.engine.stats), time.process_time()
                modules.clear()
                _, _, seconds = asyncio.run(run_clients(url, same[:count], count, args.timeout))
                after = app.state.engine.stats
                if repeat >= args.warmup:
                    spent = times[count]
                    spent["wall"].append(seconds)
                    spent["cpu"].append(time.process_time() - cpu)
                    for stage in stages[2:5]:
                        spent[stage].append(getattr(after, f"{stage}_seconds") - getattr(before, f"{stage}_seconds"))
                    for stage in stages[5:]:
                        spent[stage].append(modules[stage])
    app.state.engine.stop()
    median = {
        count: {stage: statistics.median(values) * 1000 for stage, values in spent.items()}
        for count, spent in times.items()
    }
    one, eight = median[1], median[8]
    print(
        f"8 questions about one image: {eight['wall']:.0f} ms vs 1 question {one['wall']:.0f} ms: "
        f"{eight['wall'] / one['wall']:.2f}x (target <= {SAME_IMAGE_TARGET}x; cold cache each time); CPU time "
        f"{eight['cpu']:.0f} ms vs {one['cpu']:.0f} ms: {eight['cpu'] / one['cpu']:.2f}x"
    )
    for count in (1, 8):
        spent = median[count]
        rest = spent["wall"] - spent["processor"] - spent["prefix"] - spent["generate"]
        print(
            f"  {count} question(s), ms of wall time: processor {spent['processor']:.1f}, shared prefix "
            f"{spent['prefix']:.1f}, generate {spent['generate']:.1f}, the rest (HTTP, parsing, batch wait) {rest:.1f}; "
            f"of prefix + generate: vision encoder {spent['vision']:.1f}, language model {spent['language']:.1f}"
        )
    stats = app.state.cache.stats
    print(
        f"  cache over all runs: {stats.preprocessed_images} images preprocessed, {stats.encoded_images} encoded, "
        f"{stats.prefix_misses} prompt prefixes run for {args.warmup + args.repeats} x 2 batches"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
