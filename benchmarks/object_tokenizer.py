# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Benchmark: vectorised SAOT object tokenizer vs the per-region / per-cluster Python-loop reference.

Builds the object tokenizer at the released 2B widths (vision C=1152, LLM D=1536, mask_num K=32, 5 k-means
iterations) and feeds it 32 regions of mixed crop sizes with blob-shaped (elliptical) grid masks, as the processor
would produce. Both implementations run on the same inputs in the same process; the script prints the median time per
call of each, the speed-up ratio, and the largest absolute difference between their tokens (exit code 1 when it is
1e-4 or more).

    .venv/bin/python benchmarks/object_tokenizer.py [--device cpu|cuda] [--repeats 10]
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass

import torch
from common import add_common_arguments, median_seconds

from pixelrefer_plugin.configuration_pixelrefer import PixelReferConfig
from pixelrefer_plugin.object_tokenizer import PixelReferObjectTokenizer
from pixelrefer_plugin.testing.saot_reference import reference_object_tokens, reference_pool

logger = logging.getLogger("benchmarks.object_tokenizer")

VISION_WIDTH = 1152
TEXT_WIDTH = 1536
MAX_ABS_DIFF = 1e-4
TARGET_SPEEDUP = 20.0  # stated in the issue; reported, never asserted


@dataclass
class RegionBatch:
    """Inputs of `PixelReferObjectTokenizer.forward` for a batch of regions."""

    crop_features: torch.Tensor
    grid_sizes: torch.Tensor
    grid_mask: torch.Tensor
    boxes: torch.Tensor
    image_sizes: torch.Tensor

    def args(self) -> tuple[torch.Tensor, ...]:
        return self.crop_features, self.grid_sizes, self.grid_mask, self.boxes, self.image_sizes

    def to(self, device: torch.device) -> RegionBatch:
        return RegionBatch(*(t.to(device) for t in self.args()))


def build_module(seed: int) -> PixelReferObjectTokenizer:
    """SAOT at the 2B model's widths (the vision / LLM stacks are not built: only the object tokenizer)."""
    config = PixelReferConfig(
        vision_config={
            "hidden_size": VISION_WIDTH,
            "intermediate_size": 4304,
            "num_hidden_layers": 1,
            "num_attention_heads": 16,
            "patch_size": 14,
        },
        text_config={
            "model_type": "qwen2",
            "hidden_size": TEXT_WIDTH,
            "intermediate_size": 256,
            "num_hidden_layers": 1,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
            "vocab_size": 1000,
        },
        mask_num=32,
        kmeans_iters=5,
    )
    torch.manual_seed(seed)
    return PixelReferObjectTokenizer(config).eval()


def ellipse_mask(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """`(h, w)` bool blob: an ellipse with jittered centre and semi-axes of 35-50% of the grid sides."""
    jitter = torch.rand(4, generator=generator)
    centre_y = (height - 1) / 2 + (float(jitter[0]) - 0.5) * 0.1 * height
    centre_x = (width - 1) / 2 + (float(jitter[1]) - 0.5) * 0.1 * width
    axis_y = max(1.0, (0.35 + 0.15 * float(jitter[2])) * height)
    axis_x = max(1.0, (0.35 + 0.15 * float(jitter[3])) * width)
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    mask = ((rows - centre_y) / axis_y) ** 2 + ((cols - centre_x) / axis_x) ** 2 <= 1.0
    if not mask.any():
        mask[height // 2, width // 2] = True
    return mask


def smooth_features(height: int, width: int, generator: torch.Generator, parts: int = 12) -> torch.Tensor:
    """`(h*w, C)` crop features with spatial structure, like an encoder's: a few "part" vectors blended by Gaussian
    bumps over the grid, plus noise. (Plain white noise would let k-means converge after two iterations.)"""
    part_vectors = torch.randn(parts, VISION_WIDTH, generator=generator)
    centres = torch.rand(parts, 2, generator=generator) * torch.tensor([height, width])
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    cells = torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=-1).float()
    spread = max(height, width) / 3
    weights = torch.softmax(-torch.cdist(cells, centres).pow(2) / (2 * spread**2) * 4, dim=-1)
    return weights @ part_vectors + 0.3 * torch.randn(height * width, VISION_WIDTH, generator=generator)


def make_regions(num_regions: int, seed: int) -> RegionBatch:
    """Deterministic regions of mixed sizes: every 8th one small (4-6 cells a side, < 32 mask cells, no k-means),
    the rest 8-24 cells a side (up to ~450 mask cells, most reduced to 32 tokens by k-means)."""
    generator = torch.Generator().manual_seed(seed)
    grid_sizes, masks, features, boxes, image_sizes = [], [], [], [], []
    for index in range(num_regions):
        low, high = (4, 7) if index % 8 == 0 else (8, 25)
        height, width = (int(v) for v in torch.randint(low, high, (2,), generator=generator))
        masks.append(ellipse_mask(height, width, generator).reshape(-1))
        features.append(smooth_features(height, width, generator))
        grid_sizes.append((height, width))
        image_height, image_width = (int(v) for v in torch.randint(360, 1081, (2,), generator=generator))
        crop_height = int(torch.randint(16, image_height // 2, (1,), generator=generator))
        crop_width = int(torch.randint(16, image_width // 2, (1,), generator=generator))
        top = int(torch.randint(0, image_height - crop_height, (1,), generator=generator))
        left = int(torch.randint(0, image_width - crop_width, (1,), generator=generator))
        boxes.append((top, left, top + crop_height, left + crop_width))
        image_sizes.append((image_height, image_width))
    grid_mask = torch.cat(masks)
    return RegionBatch(
        crop_features=torch.cat(features),
        grid_sizes=torch.tensor(grid_sizes, dtype=torch.long),
        grid_mask=grid_mask,
        boxes=torch.tensor(boxes, dtype=torch.long),
        image_sizes=torch.tensor(image_sizes, dtype=torch.long),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, "implementation")
    parser.add_argument("--regions", type=int, default=32, help="number of regions per call")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    module = build_module(args.seed).to(device)
    batch = make_regions(args.regions, args.seed).to(device)

    cells = batch.grid_mask.split((batch.grid_sizes[:, 0] * batch.grid_sizes[:, 1]).tolist())
    mask_cells = torch.stack([c.sum() for c in cells]).cpu()
    needs_kmeans = int((mask_cells > module.mask_num).sum())
    logger.info(
        "SAOT benchmark: device=%s torch=%s threads=%d | C=%d D=%d K=%d kmeans_iters=%d",
        device,
        torch.__version__,
        torch.get_num_threads(),
        VISION_WIDTH,
        TEXT_WIDTH,
        module.mask_num,
        module.kmeans_iters,
    )
    logger.info(
        "%d regions: grids %s..%s cells, mask cells %d..%d (median %d), %d regions need k-means",
        args.regions,
        int((batch.grid_sizes[:, 0] * batch.grid_sizes[:, 1]).min()),
        int((batch.grid_sizes[:, 0] * batch.grid_sizes[:, 1]).max()),
        int(mask_cells.min()),
        int(mask_cells.max()),
        int(mask_cells.median()),
        needs_kmeans,
    )

    with torch.no_grad():
        tokens, tokens_per_region = module(*batch.args())
        reference = reference_object_tokens(module, *batch.args())
        if tokens.shape != reference.shape:
            logger.error("shape mismatch: vectorised %s vs reference %s", tuple(tokens.shape), tuple(reference.shape))
            return 1
        max_diff = float((tokens.float() - reference.float()).abs().max())
        pooled, _ = module.pool(*batch.args())

        full_ref_s, full_vec_s, pool_ref_s, pool_vec_s, projection_s = median_seconds(
            [
                lambda: reference_object_tokens(module, *batch.args()),
                lambda: module(*batch.args()),
                lambda: reference_pool(module, *batch.args()),
                lambda: module.pool(*batch.args()),
                lambda: module.feat_linear(pooled),
            ],
            device,
            args.warmup,
            args.repeats,
        )

    rows = [
        ("SAOT forward (pos-enc + pooling + k-means + MLP)", full_ref_s, full_vec_s),
        ("pooling only (pos-enc + pooling + k-means)", pool_ref_s, pool_vec_s),
    ]
    logger.info("")
    logger.info("| %-48s | %14s | %15s | %8s |", "stage", "reference ms", "vectorised ms", "speed-up")
    logger.info("|%s|%s:|%s:|%s:|", "-" * 50, "-" * 15, "-" * 16, "-" * 9)
    for name, reference_s, vectorised_s in rows:
        logger.info(
            "| %-48s | %14.2f | %15.2f | %7.1fx |",
            name,
            reference_s * 1e3,
            vectorised_s * 1e3,
            reference_s / vectorised_s,
        )
    logger.info(
        "| %-48s | %14s | %15.2f | %8s |",
        f"MLP projection alone ({tokens.shape[0]} tokens, shared)",
        "",
        projection_s * 1e3,
        "",
    )
    logger.info("")
    ratio = full_ref_s / full_vec_s
    logger.info(
        "speed-up of the SAOT forward (reference / vectorised): %.1fx  "
        "(median of %d interleaved runs after %d warm-up; target %.0fx: %s)",
        ratio,
        args.repeats,
        args.warmup,
        TARGET_SPEEDUP,
        "met" if ratio >= TARGET_SPEEDUP else "NOT met",
    )
    logger.info(
        "ceiling of the forward speed-up if pooling + k-means cost nothing (reference forward / MLP alone): %.1fx",
        full_ref_s / projection_s,
    )
    logger.info("tokens: %d, tokens per region: %s", tokens.shape[0], tokens_per_region.tolist())
    ok = max_diff < MAX_ABS_DIFF
    logger.info("max |vectorised - reference| = %.3g (%s, limit %.0e)", max_diff, "OK" if ok else "FAIL", MAX_ABS_DIFF)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
