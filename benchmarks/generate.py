# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Benchmark: batched generation of 8 samples vs the same 8 samples one by one.

Builds a random-init preset in memory (default `pixelrefer-tiny`, float32, CPU), makes 8 synthetic scenes with 1 to 3
regions each (mask, box, point, rle and polygon regions mixed), and times

* one by one: processor + `generate()` for each sample in a loop, and
* batched: processor on all 8 samples + a single `generate()`,

each with greedy decoding of exactly `--new-tokens` tokens (`min_new_tokens = max_new_tokens`, so the random model
cannot stop early at EOS). It prints generated tokens per second for both and their ratio, and checks that the batched
greedy tokens equal the one-by-one tokens (exit code 1 when they do not).

    .venv/bin/python benchmarks/generate.py [--device cpu|cuda] [--repeats 10] [--preset pixelrefer-tiny]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from common import add_common_arguments

from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.synthetic import SceneObject, make_scene

logger = logging.getLogger("benchmarks.generate")

TARGET_SPEEDUP = 3.0  # stated in the issue for CPU; reported, never asserted
REGION_KINDS = ("mask", "box", "point", "rle", "polygon")
QUESTIONS = {
    1: "What colour is <region>?",
    2: "Which is larger, <region> or <region>?",
    3: "Describe <region>, <region> and <region>.",
}


def region_dict(kind: str, obj: SceneObject) -> dict[str, Any]:
    """A region input of the given kind that refers to `obj`."""
    x0, y0, x1, y1 = obj.box
    if kind == "mask":
        return {"mask": obj.mask}
    if kind == "box":
        return {"box": [x0, y0, x1, y1]}
    if kind == "point":
        return {"point": [(x0 + x1) / 2, (y0 + y1) / 2]}
    if kind == "rle":
        from pycocotools import mask as mask_utils

        encoded = mask_utils.encode(np.asfortranarray(obj.mask.astype(np.uint8)))
        return {"rle": {"size": list(encoded["size"]), "counts": encoded["counts"]}}
    if kind == "polygon":
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return {"polygon": [[cx, y0, x1, cy, cx, y1, x0, cy]]}  # the diamond inscribed in the box
    raise ValueError(f"unknown region kind {kind!r}")


def make_samples(processor: Any, num_samples: int, seed: int) -> list[tuple[str, np.ndarray, list[dict[str, Any]]]]:
    """`num_samples` (prompt, image, regions) triples: a different scene each, 1-3 regions of mixed kinds."""
    samples = []
    kind_index = 0
    for index in range(num_samples):
        image, objects = make_scene(np.random.default_rng(seed + index))
        num_regions = 1 + index % 3
        regions = []
        for obj in objects[:num_regions]:
            regions.append(region_dict(REGION_KINDS[kind_index % len(REGION_KINDS)], obj))
            kind_index += 1
        prompt = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTIONS[num_regions]}]}],
            add_generation_prompt=True,
        )
        samples.append((prompt, image, regions))
    return samples


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, "mode")
    parser.add_argument("--preset", default="pixelrefer-tiny", help="registry preset (random init)")
    parser.add_argument("--tokenizer", default=None, help="local tokenizer folder (needed by non-tiny presets)")
    parser.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"), help="default: preset's")
    parser.add_argument("--samples", type=int, default=8, help="batch size")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated per sample")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    model, processor = build_model_and_processor(
        args.preset, tokenizer_path=args.tokenizer, seed=args.seed, dtype=dtype
    )
    model = model.to(device)
    model_dtype = next(model.parameters()).dtype
    samples = make_samples(processor, args.samples, args.seed)
    new_tokens = args.new_tokens
    generate_kwargs = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False}

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def prepare(batch: list[tuple[str, np.ndarray, list[dict[str, Any]]]]) -> tuple[Any, float]:
        """Processor outputs on the device, and the seconds it took."""
        start = time.perf_counter()
        inputs = processor(text=[s[0] for s in batch], images=[s[1] for s in batch], regions=[s[2] for s in batch])
        inputs = inputs.to(device=device, dtype=model_dtype)
        synchronize()
        return inputs, time.perf_counter() - start

    def one_by_one() -> tuple[list[list[int]], float]:
        outputs, processor_s = [], 0.0
        for sample in samples:
            inputs, seconds = prepare([sample])
            processor_s += seconds
            generated = model.generate(**inputs, **generate_kwargs)
            outputs.append(generated[0, inputs["input_ids"].shape[1] :].tolist())
        return outputs, processor_s

    def batched() -> tuple[list[list[int]], float]:
        inputs, processor_s = prepare(samples)
        generated = model.generate(**inputs, **generate_kwargs)
        return generated[:, inputs["input_ids"].shape[1] :].tolist(), processor_s

    def timed(function: Callable[[], tuple[list[list[int]], float]]) -> tuple[float, float, list[list[int]]]:
        """(total seconds, processor seconds, generated tokens) of one run."""
        synchronize()
        start = time.perf_counter()
        result, processor_s = function()
        synchronize()
        return time.perf_counter() - start, processor_s, result

    logger.info(
        "generate benchmark: preset=%s (%d parameters, %s) device=%s torch=%s threads=%d",
        args.preset,
        model.num_parameters(),
        str(model_dtype).removeprefix("torch."),
        device,
        torch.__version__,
        torch.get_num_threads(),
    )
    region_counts = [len(s[2]) for s in samples]
    logger.info(
        "%d samples, regions per sample %s (kinds cycle through %s), %d new tokens each (greedy)",
        len(samples),
        region_counts,
        "/".join(REGION_KINDS),
        new_tokens,
    )

    with torch.no_grad():
        for _ in range(args.warmup):
            one_by_one()
            batched()
        runs: dict[str, list[tuple[float, float, list[list[int]]]]] = {"one by one": [], "batched": []}
        for _ in range(args.repeats):  # interleaved, so a change of machine load affects both modes alike
            runs["one by one"].append(timed(one_by_one))
            runs["batched"].append(timed(batched))

    total_tokens = len(samples) * new_tokens
    medians = {
        mode: (statistics.median(r[0] for r in results), statistics.median(r[1] for r in results))
        for mode, results in runs.items()
    }
    logger.info("")
    logger.info(
        "| %-11s | %14s | %12s | %16s | %10s |",
        "mode",
        f"s / {len(samples)} samples",
        "processor s",
        "generated tokens",
        "tokens / s",
    )
    logger.info("|%s|%s:|%s:|%s:|%s:|", "-" * 13, "-" * 15, "-" * 13, "-" * 17, "-" * 11)
    for mode, (total_s, processor_s) in medians.items():
        logger.info(
            "| %-11s | %14.3f | %12.3f | %16d | %10.1f |",
            mode,
            total_s,
            processor_s,
            total_tokens,
            total_tokens / total_s,
        )
    logger.info("")
    single_s, batch_s = medians["one by one"][0], medians["batched"][0]
    single_out, batch_out = runs["one by one"][-1][2], runs["batched"][-1][2]
    ratio = single_s / batch_s
    logger.info(
        "throughput ratio (batched / one by one): %.2fx  (median of %d interleaved runs after %d warm-up; "
        "target %.0fx: %s)",
        ratio,
        args.repeats,
        args.warmup,
        TARGET_SPEEDUP,
        "met" if ratio >= TARGET_SPEEDUP else "NOT met",
    )
    mismatched = [i for i, (a, b) in enumerate(zip(single_out, batch_out, strict=True)) if a != b]
    if mismatched:
        for index in mismatched:
            first = next(
                (pos for pos, (a, b) in enumerate(zip(single_out[index], batch_out[index], strict=True)) if a != b),
                None,
            )
            logger.error(
                "sample %d (%d regions): batched tokens differ from one-by-one from position %s\n  one by one: %s\n"
                "  batched:    %s",
                index,
                region_counts[index],
                first,
                single_out[index],
                batch_out[index],
            )
        logger.error(
            "batched greedy outputs match one-by-one: NO (%d of %d samples differ)", len(mismatched), len(samples)
        )
        return 1
    logger.info("batched greedy outputs match one-by-one token for token: yes (%d samples)", len(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
