# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Vectorised SAOT (pooling + k-means + MLP) against the per-region, per-cluster loop reference and, for k-means,
against the released `kmeans_fast` transcribed in `pixelrefer_plugin.testing.released_region_encoder`."""

import pytest
import torch
from helpers import TINY_TEXT_CONFIG

from pixelrefer_plugin.configuration_pixelrefer import PixelReferConfig
from pixelrefer_plugin.object_tokenizer import PixelReferObjectTokenizer, batched_kmeans, strided_kmeans_init
from pixelrefer_plugin.testing.released_region_encoder import kmeans_fast
from pixelrefer_plugin.testing.saot_reference import kmeans_loop, reference_object_tokens, reference_pool

VISION_WIDTH = 24


def make_module(**overrides) -> PixelReferObjectTokenizer:
    config = PixelReferConfig(
        vision_config={
            "hidden_size": VISION_WIDTH,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "patch_size": 14,
        },
        text_config=TINY_TEXT_CONFIG,
        **overrides,
    )
    torch.manual_seed(0)
    return PixelReferObjectTokenizer(config).eval()


def random_regions(num_regions: int, seed: int = 0, max_side: int = 22):
    generator = torch.Generator().manual_seed(seed)
    grid_sizes = torch.randint(2, max_side + 1, (num_regions, 2), generator=generator)
    cells = int((grid_sizes[:, 0] * grid_sizes[:, 1]).sum())
    features = torch.randn(cells, VISION_WIDTH, generator=generator)
    grid_mask = torch.rand(cells, generator=generator) < 0.7
    boxes = torch.randint(0, 200, (num_regions, 2), generator=generator)
    boxes = torch.cat([boxes, boxes + torch.randint(20, 200, (num_regions, 2), generator=generator)], dim=1)
    image_sizes = torch.full((num_regions, 2), 480)
    return features, grid_sizes, grid_mask, boxes, image_sizes


def test_vectorised_kmeans_equals_loop_reference_with_the_same_start():
    generator = torch.Generator().manual_seed(1)
    counts = torch.tensor([40, 33, 120, 257])
    points = torch.zeros(4, 257, 8)
    valid = torch.arange(257)[None, :] < counts[:, None]
    points[valid] = torch.randn(int(counts.sum()), 8, generator=generator)
    start = strided_kmeans_init(points, counts, 32)
    batched = batched_kmeans(points, valid, start, num_iters=5, tol=1e-6)
    for region, count in enumerate(counts.tolist()):
        expected = kmeans_loop(points[region, :count], 32, num_iters=5, tol=1e-6)
        torch.testing.assert_close(batched[region], expected, rtol=1e-5, atol=1e-5)


def stretched_points(seed: int, grid: tuple[int, int], size: tuple[int, int], width: int = 24) -> torch.Tensor:
    """Column-major `(N, C)` points as the released `MaskPooling` selects them from features stretched from `grid` to
    `size` (bilinear): rows of a channels-first map, many points equally far from two others."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(1, grid[0], grid[1], width, generator=generator).permute(0, 3, 1, 2)
    stretched = torch.nn.functional.interpolate(features, size=size, mode="bilinear", align_corners=False)
    keep = torch.rand(size, generator=generator) < 0.6
    return stretched[..., keep].permute(2, 0, 1).reshape(-1, width)


@pytest.mark.parametrize("num_iters", [5, 3], ids=["full", "lite"])
def test_kmeans_on_stretched_features_equals_the_released_kmeans_fast(num_iters):
    """Ties between centroids on stretched features are broken by float rounding alone; batched with other regions,
    each region's centroids are those of the released `kmeans_fast` from the same start."""
    sets = [stretched_points(seed, (7, 5), (21, 15)) for seed in range(4)]  # 3x: points midway between others
    sets += [stretched_points(seed, (3, 4), (24, 32)) for seed in range(3)] + [stretched_points(4, (5, 7), (13, 17))]
    counts = torch.tensor([len(points) for points in sets])
    points = torch.nn.utils.rnn.pad_sequence(sets, batch_first=True)
    valid = torch.arange(points.shape[1])[None, :] < counts[:, None]
    start = strided_kmeans_init(points, counts, 32)
    released_start = lambda n, k: torch.arange(k) * n // k  # noqa: E731  (the same start for kmeans_fast)
    batched = batched_kmeans(points, valid, start, num_iters=num_iters, tol=1e-6)
    for region, released_points in enumerate(sets):
        expected = kmeans_fast(released_points, 32, num_iterations=num_iters, kmeans_start=released_start)
        torch.testing.assert_close(batched[region], expected, rtol=0, atol=1e-5)
        alone = batched_kmeans(
            points[region : region + 1], valid[region : region + 1], start[region : region + 1], num_iters, 1e-6
        )
        assert torch.equal(alone[0], batched[region])
    # the case is there: the same points in row-major memory (other float rounding) give other centroids
    moved = [
        (kmeans_fast(p.contiguous(), 32, num_iters, released_start) - kmeans_fast(p, 32, num_iters, released_start))
        .abs()
        .max()
        for p in sets
    ]
    assert max(moved) > 1e-3


def test_kmeans_stops_as_released():
    """`torch.allclose(old, new, atol=tol)` with its relative tolerance 1e-5 stops k-means, and the centroids before
    that last update are the result."""
    points = torch.tensor([[[1000.0], [1000.002], [0.0], [0.0]]])
    start = torch.tensor([[[1000.0], [0.0]]])
    result = batched_kmeans(points, torch.ones(1, 4, dtype=torch.bool), start, num_iters=5, tol=0.0)
    expected = kmeans_fast(points[0], 2, num_iterations=5, kmeans_start=lambda n, k: torch.tensor([0, 2]))
    assert result[0, :, 0].tolist() == expected[:, 0].tolist() == [1000.0, 0.0]


@pytest.mark.parametrize("variant, dtype", [("full", torch.float32), ("lite", torch.bfloat16)])
def test_pooling_dtype_follows_the_released_variant(variant, dtype):
    """The released full model pools float32 features (`feat.to(mask.dtype)`), Lite its features' own dtype."""
    module = make_module(variant=variant).to(torch.bfloat16)
    features, *rest = random_regions(3, seed=6)
    grid_sizes = rest[0]
    with torch.no_grad():
        pooled, _ = module.pool_padded(features.bfloat16(), *rest)
        stretched, _ = module.pool_padded(features.bfloat16(), *rest, grid_sizes + 1)
    assert pooled.dtype == stretched.dtype == dtype


def test_kmeans_padding_does_not_move_centroids():
    """Padded (invalid) rows must not pull centroids: the same set padded differently gives the same result."""
    generator = torch.Generator().manual_seed(2)
    real = torch.randn(50, 6, generator=generator)
    short = batched_kmeans(real[None], torch.ones(1, 50, dtype=torch.bool), real[None, :4], 5, 1e-6)
    padded = torch.cat([real, torch.full((30, 6), 100.0)])[None]
    valid = torch.arange(80)[None] < 50
    long = batched_kmeans(padded, valid, real[None, :4], 5, 1e-6)
    torch.testing.assert_close(short, long)


def test_empty_cluster_keeps_its_centroid():
    points = torch.tensor([[[0.0], [0.1], [0.2], [10.0]]])
    start = torch.tensor([[[0.0], [5.0], [100.0]]])  # nothing is nearest to 100
    result = batched_kmeans(points, torch.ones(1, 4, dtype=torch.bool), start, num_iters=3, tol=0.0)
    assert result[0, 2, 0].item() == 100.0
    assert result[0, 0, 0].item() == pytest.approx(0.1)
    assert result[0, 1, 0].item() == pytest.approx(10.0)


@pytest.mark.parametrize("axis_swap", [True, False])
def test_object_tokens_equal_reference_for_mixed_regions(axis_swap):
    module = make_module(position_axis_swap=axis_swap)
    inputs = random_regions(12)
    with torch.no_grad():
        tokens, per_region = module(*inputs)
        expected = reference_object_tokens(module, *inputs)
        pooled = reference_pool(module, *inputs)
    assert per_region.tolist() == [len(p) for p in pooled]
    torch.testing.assert_close(tokens, expected, rtol=1e-5, atol=1e-5)


def test_token_counts_are_min_of_mask_num_and_mask_cells():
    module = make_module(mask_num=8)
    features, grid_sizes, grid_mask, boxes, image_sizes = random_regions(6, seed=3, max_side=6)
    with torch.no_grad():
        tokens, per_region = module(features, grid_sizes, grid_mask, boxes, image_sizes)
    cells = torch.split(grid_mask, (grid_sizes[:, 0] * grid_sizes[:, 1]).tolist())
    assert per_region.tolist() == [min(8, int(c.sum())) for c in cells]
    assert tokens.shape == (int(per_region.sum()), 32)
    assert (per_region < 8).any() and (per_region == 8).any()  # both pooled-as-is and k-means regions are covered


def test_object_tokens_are_deterministic_and_independent_of_batch_composition():
    module = make_module()
    inputs = random_regions(5, seed=4)
    with torch.no_grad():
        first, counts = module(*inputs)
        second, _ = module(*inputs)
        # the last region alone must give the rows it got inside the batch
        cells = (inputs[1][:, 0] * inputs[1][:, 1]).tolist()
        start = sum(cells[:-1])
        alone, _ = module(inputs[0][start:], inputs[1][-1:], inputs[2][start:], inputs[3][-1:], inputs[4][-1:])
    assert torch.equal(first, second)
    torch.testing.assert_close(first[-int(counts[-1]) :], alone, rtol=1e-5, atol=1e-6)


def test_gradients_reach_position_and_projection_layers():
    module = make_module().train()
    features, *rest = random_regions(3, seed=5)
    features.requires_grad_(True)
    tokens, _ = module(features, *rest)
    tokens.square().mean().backward()
    assert module.pos_linear.weight.grad.abs().sum() > 0
    assert module.feat_linear[2].weight.grad.abs().sum() > 0
    assert features.grad.abs().sum() > 0
