# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Vectorised SAOT (pooling + k-means + MLP) against the per-region, per-cluster loop reference."""

import pytest
import torch
from helpers import TINY_TEXT_CONFIG

from pixelrefer_plugin.configuration_pixelrefer import PixelReferConfig
from pixelrefer_plugin.object_tokenizer import PixelReferObjectTokenizer, batched_kmeans, strided_kmeans_init
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
