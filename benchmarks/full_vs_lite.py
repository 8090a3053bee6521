# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Benchmark: PixelRefer (full) vs PixelRefer-Lite on the same image + region and the same video + region.

Builds the two random-init presets in memory (default `pixelrefer-tiny` and `pixelrefer-lite-tiny`: the same vision
encoder and LLM sizes, float32), makes a 640 x 480 synthetic scene with one masked object and writes a short real video
file with PyAV (a red square moving over a plain background; the region is its mask on frame 8), and measures for each
variant and input

* the LLM input length (`input_ids.shape[1]`) and the number of patches the vision encoder reads,
* the wall time of the processor alone, of the model forward alone (the prefill, inputs ready) and of processor +
  `generate()` with greedy decoding of exactly `--new-tokens` tokens (median of interleaved runs after warm-up),
* where the time of the forward and of `generate()` goes (vision encoder, object tokens, LLM, LM head, rest), and
* the peak memory of the forward and of `generate()` above what is resident before the call (weights, inputs): on CPU
  the rise of the peak resident set size in a fresh subprocess per variant and input (Linux only: `/proc/self`; use
  `--no-memory` elsewhere), on CUDA `torch.cuda.max_memory_allocated`.

It prints the numbers side by side with the ratio Lite / full and the reduction in percent. The paper's figures for
the released models (Lite: 15-41 % less latency, 37-79 % less memory) are reported, never asserted; the tiny presets
share the released geometry (crops, object tokens, context images) but not the encoder / LLM sizes, so their balance of
costs differs. Exit code 1 when a run fails (a memory subprocess, or `generate()` not producing `--new-tokens` tokens).

    .venv/bin/python benchmarks/full_vs_lite.py [--device cpu|cuda] [--repeats 10] [--new-tokens 16]
        [--image-max-pixels 1605632 --video-max-pixels 6422528]  # the released models' scene budgets
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import add_common_arguments, median_seconds, synchronize

from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.synthetic import make_scene

logger = logging.getLogger("benchmarks.full_vs_lite")

INPUTS = ("image", "video")
VARIANTS = ("full", "lite")
PAPER_LATENCY_REDUCTION = (15, 41)  # percent, released models; reported, never asserted
PAPER_MEMORY_REDUCTION = (37, 79)
IMAGE_SIZE = (480, 640)
VIDEO_SIZE = (224, 320)
VIDEO_FRAMES = 16
VIDEO_FPS = 4
REGION_FRAME = 8
SQUARE_SIDE = 64
MEMORY_REPEATS = 3
PIXEL_INPUTS = (
    "pixel_values",
    "pixel_values_videos",
    "region_pixel_values",
    "region_local_pixel_values",
    "frame_pixel_values",
)
STAGES = ("vision encoder", "object tokens", "LLM", "LM head")


def square_mask(frame: int) -> np.ndarray:
    """`(H, W)` bool mask of the moving square on frame `frame` of the benchmark video."""
    height, width = VIDEO_SIZE
    top, left = 60 + 4 * frame, 20 + 12 * frame
    mask = np.zeros((height, width), dtype=bool)
    mask[top : top + SQUARE_SIDE, left : left + SQUARE_SIDE] = True
    return mask


def write_video(path: Path) -> None:
    """A `VIDEO_FRAMES`-frame MPEG-4 file at `VIDEO_FPS` fps: a red square moving over a light grey background."""
    import av

    height, width = VIDEO_SIZE
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=VIDEO_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in range(VIDEO_FRAMES):
            image = np.full((height, width, 3), 245, dtype=np.uint8)
            image[square_mask(frame)] = (220, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@dataclass
class Case:
    """One variant on one input: its model, and how to build its inputs from the raw image / video + region."""

    source: str  # "image" or "video"
    variant: str  # "full" or "lite"
    model: Any
    processor: Any
    prepare: Callable[[], Any]  # processor call -> inputs on the device

    @property
    def name(self) -> str:
        return f"{self.source} / {self.variant}"


def build_models(args: argparse.Namespace, variants: tuple[str, ...] = VARIANTS) -> dict[str, tuple[Any, Any]]:
    """`variant -> (model on the device, processor)`; `--image-max-pixels` / `--video-max-pixels` override the full
    processor's scene budgets (region crops and Lite's context images have their own sizes)."""
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    presets = {"full": args.full_preset, "lite": args.lite_preset}
    built = {}
    for variant in variants:
        model, processor = build_model_and_processor(
            presets[variant], tokenizer_path=args.tokenizer, seed=args.seed, dtype=dtype
        )
        if processor.variant != variant:
            raise ValueError(f"preset {presets[variant]!r} is a {processor.variant} preset, expected {variant}")
        if variant == "full" and args.image_max_pixels is not None:
            processor.image_processor.size["longest_edge"] = args.image_max_pixels
        if variant == "full" and args.video_max_pixels is not None:
            processor.video_max_pixels = args.video_max_pixels
        built[variant] = (model.to(device), processor)
    return built


def build_cases(
    args: argparse.Namespace, models: dict[str, tuple[Any, Any]], video_path: Path, sources: tuple[str, ...] = INPUTS
) -> list[Case]:
    """The cases for every (input, variant) pair of `sources` x `models`, in that order."""
    device = torch.device(args.device)
    image, objects = make_scene(np.random.default_rng(args.seed), size=IMAGE_SIZE)
    image_mask = objects[0].mask
    video_mask = square_mask(REGION_FRAME)
    cases = []
    for source in sources:
        for variant, (model, processor) in models.items():
            messages = [
                {
                    "role": "user",
                    "content": [
                        {"type": source},
                        {"type": "text", "text": f"Please describe the <region> in the {source} in detail."},
                    ],
                }
            ]
            prompt = processor.apply_chat_template(messages, add_generation_prompt=True)  # Lite: no <image>/<video>
            if source == "image":
                kwargs = {"images": image, "regions": [{"mask": image_mask}]}
            elif variant == "full":
                kwargs = {"videos": str(video_path), "regions": [{"mask": video_mask, "frame": REGION_FRAME}]}
            else:
                kwargs = {"videos": str(video_path), "regions": [{"frames": {REGION_FRAME: {"mask": video_mask}}}]}
            dtype = next(model.parameters()).dtype

            def prepare(processor=processor, prompt=prompt, kwargs=kwargs, dtype=dtype) -> Any:
                return processor(text=prompt, **kwargs).to(device=device, dtype=dtype)

            cases.append(Case(source, variant, model, processor, prepare))
    return cases


@contextlib.contextmanager
def stage_timers(model: Any, device: torch.device) -> Iterator[dict[str, float]]:
    """Accumulate, per stage, the seconds spent inside the model's vision encoder pass (`encode_packed`), object-token
    computation (SAOT; Lite: + Object-Centric Infusion), language model and LM head, while the context is open."""
    totals = dict.fromkeys(STAGES, 0.0)
    targets = {
        "vision encoder": (model.model, "encode_packed"),
        "object tokens": (model.model, "object_tokens"),
        "LLM": (model.model.language_model, "forward"),
        "LM head": (model.lm_head, "forward"),
    }

    def probe(original: Callable, stage: str) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            synchronize(device)
            start = time.perf_counter()
            result = original(*args, **kwargs)
            synchronize(device)
            totals[stage] += time.perf_counter() - start
            return result

        return timed

    for stage, (owner, attribute) in targets.items():
        setattr(
            owner, attribute, probe(getattr(owner, attribute), stage)
        )  # an instance attribute shadows the class's method
    try:
        yield totals
    finally:
        for owner, attribute in targets.values():
            delattr(owner, attribute)


def generate(case: Case, inputs: Any, new_tokens: int) -> torch.Tensor:
    return case.model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)


def input_summary(case: Case, inputs: Any) -> dict[str, int]:
    """LLM input length split into scene / object / text tokens, and the patches the vision encoder reads."""
    ids = inputs["input_ids"][0]
    processor = case.processor
    scene_ids = [processor.image_token_id] + (
        [processor.video_token_id] if processor.video_token_id is not None else []
    )
    scene = int(sum((ids == token).sum() for token in scene_ids))
    objects = int((ids == processor.region_token_id).sum())
    return {
        "length": int(ids.shape[0]),
        "scene": scene,
        "object": objects,
        "text": int(ids.shape[0]) - scene - objects,
        "patches": sum(int(inputs[name].shape[0]) for name in PIXEL_INPUTS if inputs.get(name) is not None),
        **{name: int(inputs[name].shape[0]) for name in PIXEL_INPUTS if inputs.get(name) is not None},
    }


# ----------------------------------------------------------------------------------------------------------------------
# Peak memory (subprocess per input and variant)


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    if match is None:
        raise OSError(f"/proc/self/status has no {field}")
    return int(match.group(1))


def _release_free_memory() -> None:
    """Collect garbage and hand the allocator's free pages back to the OS, so the RSS is the live memory."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_bytes(function: Callable[[], object], device: torch.device) -> int:
    """Peak memory of `function()` above the memory in use just before the call.

    CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, minus `memory_allocated` before.
    CPU (Linux): free pages are handed back to the OS (`malloc_trim`), the kernel's peak-RSS counter is reset to the
    current RSS (`echo 5 > /proc/self/clear_refs`), and the result is `VmHWM` after the call minus `VmRSS` before.
    torch's CPU allocator does not cache, so with glibc's mmap threshold fixed (`MALLOC_MMAP_THRESHOLD_`, set by
    `measure_memory`) this tracks the tensors alive during the call to within ~0.1 MB.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        function()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    _release_free_memory()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    before = _proc_status_kib("VmRSS")
    function()
    return (_proc_status_kib("VmHWM") - before) * 1024


def memory_worker(args: argparse.Namespace) -> int:
    """Subprocess entry: measure the peak memory of forward and generate of one variant on one input; print JSON."""
    source, variant = args.memory_worker.split(":")
    device = torch.device(args.device)
    models = build_models(args, (variant,))
    (case,) = build_cases(args, models, Path(args.video_path), (source,))
    with torch.no_grad():
        inputs = case.prepare()
        for _ in range(max(1, args.warmup)):  # one-off allocations (kernels, thread pools) are not the call's
            case.model(**inputs)
            generate(case, inputs, args.new_tokens)
        result = {}
        for call, function in (
            ("forward", lambda: case.model(**inputs)),
            ("generate", lambda: generate(case, inputs, args.new_tokens)),
        ):
            result[call] = statistics.median(peak_bytes(function, device) for _ in range(MEMORY_REPEATS))
    print(json.dumps(result))
    return 0


def measure_memory(argv: list[str], video_path: Path) -> dict[tuple[str, str], dict[str, float]]:
    """Run `memory_worker` in a fresh Python process for each (input, variant); `{(input, variant): {...}}`."""
    # A fixed mmap threshold (glibc) puts every allocation of 64 KiB or more in its own mapping, returned to the OS on
    # free; glibc's default threshold moves with the allocation history, which made the RSS peaks vary by ~1 MB.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    results = {}
    for source in INPUTS:
        for variant in VARIANTS:
            command = [sys.executable, str(Path(__file__).resolve()), *argv]
            command += ["--memory-worker", f"{source}:{variant}", "--video-path", str(video_path)]
            completed = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
            if completed.returncode != 0:
                raise RuntimeError(f"memory subprocess for {source} / {variant} failed:\n{completed.stderr[-3000:]}")
            results[source, variant] = json.loads(completed.stdout.strip().splitlines()[-1])
    return results


# ----------------------------------------------------------------------------------------------------------------------
# Report


def ratio_cells(full: float, lite: float) -> tuple[str, str]:
    """`Lite / full` and the reduction `1 - Lite / full` in percent (negative: Lite needs more)."""
    if full == 0:
        return "n/a", "n/a"
    ratio = lite / full
    reduction = round((1 - ratio) * 100)
    return f"{ratio:.2f}", f"{reduction + 0:d} %"  # + 0 turns -0 into 0


def log_table(rows: list[tuple[str, str, float, float, str]]) -> None:
    """`| input | metric | full | Lite | Lite / full | reduction |` rows; values formatted with the row's format."""
    logger.info(
        "| %-6s | %-36s | %10s | %10s | %11s | %9s |", "input", "metric", "full", "Lite", "Lite / full", "reduction"
    )
    logger.info("|%s|%s|%s:|%s:|%s:|%s:|", "-" * 8, "-" * 38, "-" * 11, "-" * 11, "-" * 12, "-" * 10)
    for source, metric, full, lite, number_format in rows:
        ratio, reduction = ratio_cells(full, lite)
        logger.info(
            "| %-6s | %-36s | %10s | %10s | %11s | %9s |",
            source,
            metric,
            format(full, number_format),
            format(lite, number_format),
            ratio,
            reduction,
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, "variant and input")
    parser.add_argument("--full-preset", default="pixelrefer-tiny", help="full-variant registry preset (random init)")
    parser.add_argument("--lite-preset", default="pixelrefer-lite-tiny", help="Lite registry preset (random init)")
    parser.add_argument("--tokenizer", default=None, help="local tokenizer folder (needed by non-tiny presets)")
    parser.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"), help="default: preset's")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens generated per call (greedy, exact)")
    parser.add_argument(
        "--image-max-pixels",
        type=int,
        default=None,
        help="pixel budget of the full variant's scene image (default: the preset's; released models: 1605632)",
    )
    parser.add_argument(
        "--video-max-pixels",
        type=int,
        default=None,
        help="pixel budget of the full variant's sampled video frames (default: the preset's; released: 6422528)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)  # "input:variant", internal
    parser.add_argument("--video-path", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw_argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.memory_worker is not None:
        return memory_worker(args)
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as folder:
        video_path = Path(folder) / "moving_square.mp4"
        write_video(video_path)
        models = build_models(args, VARIANTS)
        weight_bytes = {
            variant: sum(p.numel() * p.element_size() for p in model.parameters())
            for variant, (model, _) in models.items()
        }
        cases = build_cases(args, models, video_path)
        new_tokens = args.new_tokens

        logger.info(
            "full vs Lite benchmark: presets %s / %s (%d / %d parameters, %s) device=%s torch=%s threads=%d",
            args.full_preset,
            args.lite_preset,
            models["full"][0].num_parameters(),
            models["lite"][0].num_parameters(),
            str(next(models["full"][0].parameters()).dtype).removeprefix("torch."),
            device,
            torch.__version__,
            torch.get_num_threads(),
        )
        logger.info(
            "image: %dx%d synthetic scene, region = mask of one object | video: %d frames at %d fps, %dx%d MPEG-4, "
            "region = mask of the moving square on frame %d | prompt 'Please describe the <region> in the ... in "
            "detail.' | %d new tokens (greedy)",
            IMAGE_SIZE[1],
            IMAGE_SIZE[0],
            VIDEO_FRAMES,
            VIDEO_FPS,
            VIDEO_SIZE[1],
            VIDEO_SIZE[0],
            REGION_FRAME,
            new_tokens,
        )
        logger.info(
            "full processor: image max_pixels=%d, video sampled at %g fps with video_max_pixels=%d",
            models["full"][1].image_processor.size["longest_edge"],
            models["full"][1].video_fps,
            models["full"][1].video_max_pixels,
        )

        with torch.no_grad():
            prepared = {case.name: case.prepare() for case in cases}
            summaries = {case.name: input_summary(case, prepared[case.name]) for case in cases}
            for case in cases:
                summary = summaries[case.name]
                logger.info(
                    "%-12s LLM input %4d tokens (scene %d, object %d, text %d); vision encoder reads %d patches (%s)",
                    case.name,
                    summary["length"],
                    summary["scene"],
                    summary["object"],
                    summary["text"],
                    summary["patches"],
                    ", ".join(f"{name} {summary[name]}" for name in PIXEL_INPUTS if name in summary),
                )
                produced = generate(case, prepared[case.name], new_tokens).shape[1] - summary["length"]
                if produced != new_tokens:
                    logger.error("%s: generate() produced %d tokens, expected %d", case.name, produced, new_tokens)
                    return 1

            functions: list[Callable[[], object]] = []
            for case in cases:
                inputs = prepared[case.name]
                functions += [
                    case.prepare,
                    lambda case=case, inputs=inputs: case.model(**inputs),
                    lambda case=case: generate(case, case.prepare(), new_tokens),
                ]
            seconds = median_seconds(functions, device, args.warmup, args.repeats)
            timings = {
                case.name: dict(zip(("processor", "forward", "generate"), seconds[3 * i : 3 * i + 3], strict=True))
                for i, case in enumerate(cases)
            }

            breakdown: dict[tuple[str, str], list[dict[str, float]]] = {}
            for _ in range(args.repeats):  # interleaved, like the timings
                for case in cases:
                    inputs = prepared[case.name]
                    for call, function in (
                        ("forward", lambda case=case, inputs=inputs: case.model(**inputs)),
                        ("generate", lambda case=case, inputs=inputs: generate(case, inputs, new_tokens)),
                    ):
                        with stage_timers(case.model, device) as totals:
                            synchronize(device)
                            start = time.perf_counter()
                            function()
                            synchronize(device)
                            totals["total"] = time.perf_counter() - start
                        breakdown.setdefault((case.name, call), []).append(totals)

        memory = None
        if not args.no_memory:
            logger.info("measuring peak memory: one fresh subprocess per input and variant ...")
            try:
                memory = measure_memory(raw_argv, video_path)
            except (RuntimeError, ValueError, OSError) as error:
                logger.error("%s", error)
                return 1

    rows: list[tuple[str, str, float, float, str]] = []
    for source in INPUTS:
        full, lite = summaries[f"{source} / full"], summaries[f"{source} / lite"]
        full_t, lite_t = timings[f"{source} / full"], timings[f"{source} / lite"]
        rows += [
            (source, "LLM input length (tokens)", full["length"], lite["length"], "d"),
            (source, "vision encoder patches", full["patches"], lite["patches"], "d"),
            (source, "processor ms", full_t["processor"] * 1e3, lite_t["processor"] * 1e3, ".1f"),
            (source, "forward ms (prefill, inputs ready)", full_t["forward"] * 1e3, lite_t["forward"] * 1e3, ".1f"),
            (
                source,
                f"processor + generate ms ({new_tokens} tokens)",
                full_t["generate"] * 1e3,
                lite_t["generate"] * 1e3,
                ".1f",
            ),
        ]
        if memory is not None:
            for call in ("forward", "generate"):
                rows.append(
                    (
                        source,
                        f"peak memory of {call}, MB",
                        memory[source, "full"][call] / 2**20,
                        memory[source, "lite"][call] / 2**20,
                        ".2f",
                    )
                )
    logger.info("")
    log_table(rows)

    logger.info("")
    logger.info(
        "where the time goes (ms, median of %d interleaved runs; 'rest' = total minus the stages):", args.repeats
    )
    logger.info(
        "| %-12s | %-8s | %14s | %13s | %8s | %8s | %8s | %8s |",
        "input",
        "call",
        *STAGES,
        "rest",
        "total",
    )
    logger.info("|%s|%s|%s:|%s:|%s:|%s:|%s:|%s:|", "-" * 14, "-" * 10, "-" * 15, "-" * 14, *["-" * 9] * 4)
    for (name, call), runs in breakdown.items():
        stage_ms = [statistics.median(run[stage] for run in runs) * 1e3 for stage in STAGES]
        total_ms = statistics.median(run["total"] for run in runs) * 1e3
        logger.info(
            "| %-12s | %-8s | %14.1f | %13.1f | %8.1f | %8.1f | %8.1f | %8.1f |",
            name,
            call,
            *stage_ms,
            total_ms - sum(stage_ms),
            total_ms,
        )

    logger.info("")
    logger.info("timings: median of %d interleaved runs after %d warm-up", args.repeats, args.warmup)
    if memory is not None:
        logger.info(
            "peak memory: %s, median of %d calls, above the memory resident before the call (weights: %.2f MB full, "
            "%.2f MB Lite; inputs)",
            "torch.cuda.max_memory_allocated"
            if device.type == "cuda"
            else "rise of the peak RSS (VmHWM after clear_refs) in a fresh subprocess per input and variant",
            MEMORY_REPEATS,
            weight_bytes["full"] / 2**20,
            weight_bytes["lite"] / 2**20,
        )
    for source in INPUTS:
        full_t, lite_t = timings[f"{source} / full"], timings[f"{source} / lite"]
        parts = [
            f"LLM input {summaries[f'{source} / lite']['length'] / summaries[f'{source} / full']['length']:.2f}",
            f"forward {lite_t['forward'] / full_t['forward']:.2f}",
            f"processor + generate {lite_t['generate'] / full_t['generate']:.2f}",
        ]
        if memory is not None:
            parts += [
                f"peak memory forward {memory[source, 'lite']['forward'] / memory[source, 'full']['forward']:.2f}",
                f"generate {memory[source, 'lite']['generate'] / memory[source, 'full']['generate']:.2f}",
            ]
        logger.info("Lite / full, %s: %s", source, ", ".join(parts))
    logger.info(
        "paper (released 2B / 7B models on a GPU): Lite cuts latency by %d-%d %% and memory by %d-%d %% "
        "(reported, never asserted)",
        *PAPER_LATENCY_REDUCTION,
        *PAPER_MEMORY_REDUCTION,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
