# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""A straightforward SAOT with the public code's structure: a Python loop over regions and over k-means clusters.

Slow on purpose; it is the ground truth the vectorised `PixelReferObjectTokenizer` is checked and benchmarked against.
Both start k-means from the same deterministic rule (cluster j at point floor(j * n / K)).
"""

from __future__ import annotations

import torch

from ..object_tokenizer import PixelReferObjectTokenizer


def kmeans_loop(points: torch.Tensor, num_clusters: int, num_iters: int, tol: float) -> torch.Tensor:
    """k-means of one `(N, C)` point set, one cluster at a time; returns `(K, C)` centroids."""
    count = points.shape[0]
    centroids = points[[j * count // num_clusters for j in range(num_clusters)]].clone()
    for _ in range(num_iters):
        distances = ((points[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
        labels = distances.argmin(dim=1)
        updated = []
        for cluster in range(num_clusters):
            members = points[labels == cluster]
            updated.append(members.mean(dim=0) if len(members) else centroids[cluster])
        updated = torch.stack(updated)
        converged = torch.allclose(updated, centroids, rtol=0.0, atol=tol)
        centroids = updated
        if converged:
            break
    return centroids


def position_tensor(
    grid_size: tuple[int, int],
    box: tuple[int, int, int, int],
    image_size: tuple[int, int],
    axis_swap: bool,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """`(h, w, 2)` normalised coordinates of one crop grid (see `region_geometry.position_grids`)."""
    height, width = grid_size
    top, left, bottom, right = (float(v) for v in box)
    image_height, image_width = image_size
    rows, cols = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    u, v = cols.float() / width, rows.float() / height
    if axis_swap:
        first, second = u * (bottom - top) + top, v * (right - left) + left
    else:
        first, second = u * (right - left) + left, v * (bottom - top) + top
    return torch.stack([first / max(image_width - 1, 1), second / max(image_height - 1, 1)], dim=-1)


def reference_pool(
    module: PixelReferObjectTokenizer,
    crop_features: torch.Tensor,
    grid_sizes: torch.Tensor,
    grid_mask: torch.Tensor,
    boxes: torch.Tensor,
    image_sizes: torch.Tensor,
) -> list[torch.Tensor]:
    """Pooled (pre-projection) features of each region, one region at a time; arguments as `module.pool`."""
    pooled = []
    offset = 0
    for region in range(grid_sizes.shape[0]):
        height, width = (int(v) for v in grid_sizes[region])
        cells = height * width
        features = crop_features[offset : offset + cells].reshape(height, width, -1)
        mask = grid_mask[offset : offset + cells].reshape(height, width)
        offset += cells
        positions = position_tensor(
            (height, width),
            tuple(boxes[region].tolist()),
            tuple(image_sizes[region].tolist()),
            module.position_axis_swap,
        )
        features = features + module.pos_linear(positions.to(features.dtype))
        selected = features[mask].float()
        if selected.shape[0] > module.mask_num:
            selected = kmeans_loop(selected, module.mask_num, module.kmeans_iters, module.kmeans_tol)
        pooled.append(selected)
    return pooled


def reference_object_tokens(module: PixelReferObjectTokenizer, *args: torch.Tensor) -> torch.Tensor:
    """Object tokens `(T, D)` computed region by region; arguments as `module.forward`."""
    pooled = reference_pool(module, *args)
    return torch.cat([module.feat_linear(p.to(module.feat_linear[0].weight.dtype)) for p in pooled])
