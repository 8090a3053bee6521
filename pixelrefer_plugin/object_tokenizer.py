# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Scale-Adaptive Object Tokenizer (SAOT): crop features -> at most `mask_num` object tokens per region.

All regions of a batch are handled at once: the selected grid cells of every region are packed into one padded
`(R, N_max, C)` tensor with a validity mask, and k-means runs on all regions that need it in the same tensor ops.
There is no Python loop over regions or clusters.
"""

from __future__ import annotations

import torch
from torch import nn

from .configuration_pixelrefer import PixelReferConfig
from .region_geometry import position_grids


def strided_kmeans_init(points: torch.Tensor, counts: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """Deterministic k-means start: cluster `j` starts at point `floor(j * n / K)` of its region (raster order).

    Args:
        points: `(R, N, C)` padded points of R regions.
        counts: `(R,)` number of valid points per region, each `>= num_clusters`.
        num_clusters: K.

    Returns:
        `(R, K, C)` initial centroids.
    """
    steps = torch.arange(num_clusters, device=points.device)
    index = torch.div(steps[None, :] * counts[:, None], num_clusters, rounding_mode="floor")
    return torch.gather(points, 1, index[..., None].expand(-1, -1, points.shape[-1]))


KMEANS_RTOL = 1e-5
"""Relative part of the k-means stop test: `torch.allclose`'s default, which the released `kmeans_fast` relies on."""

EXACT_DISTANCE_CHUNK = 1 << 24
"""Elements of `(points, K, C)` differences computed at once by the exact distance check of `nearest_centroids`."""


def nearest_centroids(
    points: torch.Tensor, valid: torch.Tensor, centroids: torch.Tensor, point_norms: torch.Tensor | None = None
) -> torch.Tensor:
    """Index of each point's nearest centroid, decided as the released `kmeans_fast` decides it.

    The released code takes `argmin_k sum((x - c_k) ** 2)`. Features stretched to a larger grid (crops refitted into
    the pixel budget) hold points equally far from two centroids, whose tie only the float rounding of that formula
    breaks. A matmul (`|c|² - 2 x·c`) ranks the centroids of every point; where the best two lie within
    `2 sqrt(C) eps (|x| + max|c|)²` of each other (about 25 times the rounding error of either formula measured at
    C = 1152), the released formula itself decides, on the released memory layout (in chunks of
    `EXACT_DISTANCE_CHUNK` elements).

    Args:
        points: `(R, N, C)` float points, padded.
        valid: `(R, N)` bool, which points are real.
        centroids: `(R, K, C)`.
        point_norms: `(R, N)` `points.norm(dim=-1)`, when already known.

    Returns:
        `(R, N)` long labels (padding rows: any).
    """
    width, num_clusters = points.shape[-1], centroids.shape[1]
    with torch.no_grad():
        scores = torch.baddbmm(centroids.square().sum(-1)[:, None, :], points, centroids.transpose(1, 2), alpha=-2)
        labels = scores.argmin(dim=-1)
        norms = points.norm(dim=-1) if point_norms is None else point_norms
        reach = norms + centroids.norm(dim=-1).amax(dim=-1, keepdim=True)  # (R, N)
        slack = 2 * width**0.5 * torch.finfo(points.dtype).eps * reach.square()
        close = (scores <= scores.amin(dim=-1, keepdim=True) + slack[..., None]).sum(dim=-1) > 1
        region, point = (close & valid).nonzero(as_tuple=True)
        rows = max(1, EXACT_DISTANCE_CHUNK // (num_clusters * width))
        for chunk in torch.arange(len(region), device=points.device).split(rows):
            r, n = region[chunk], point[chunk]
            # The released points are column-major (`x[..., valid]` of a channels-first map), so its `(n, K, C)`
            # differences lie in memory as `(C, K, n)`; the same layout gives its sums over C, bit for bit.
            differences = points.new_empty(width, num_clusters, len(chunk))
            torch.sub(points[r, n].t()[:, None, :], centroids[r].permute(2, 1, 0), out=differences)
            labels[r, n] = torch.argmin(torch.sum(differences.permute(2, 1, 0) ** 2, dim=2), dim=1)
    return labels


def cluster_means(
    points: torch.Tensor, valid: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor
) -> torch.Tensor:
    """Mean of each cluster's points, a cluster with no point keeping its centroid: `(R, K, C)`.

    As the released `tokens[labels == i].mean(dim=0)`: the members of a cluster in point order, reduced by `mean` over
    a tensor of exactly their count (clusters of one size are reduced together), so every mean is the released one
    bit for bit, whatever else the batch holds.
    """
    num_regions, _, width = points.shape
    num_clusters = centroids.shape[1]
    offsets = torch.arange(num_regions, device=points.device)[:, None] * num_clusters
    cluster = torch.where(valid, labels + offsets, num_regions * num_clusters).flatten()  # padding: one extra id
    order = torch.argsort(cluster, stable=True)  # points grouped by cluster, in point order
    sizes = torch.bincount(cluster, minlength=num_regions * num_clusters + 1)[:-1]
    starts = torch.cumsum(sizes, 0) - sizes
    flat = points.flatten(0, 1)
    means = centroids.reshape(-1, width).clone()
    for size in sizes.unique().tolist():
        if size:
            clusters = (sizes == size).nonzero()[:, 0]
            members = order[starts[clusters, None] + torch.arange(size, device=points.device)]
            means[clusters] = flat[members].mean(dim=1)
    return means.view(num_regions, num_clusters, width)


def batched_kmeans(
    points: torch.Tensor,
    valid: torch.Tensor,
    initial_centroids: torch.Tensor,
    num_iters: int,
    tol: float,
) -> torch.Tensor:
    """Lloyd's k-means on many point sets at once, with the arithmetic of the released `kmeans_fast`.

    Each iteration assigns every valid point to its nearest centroid (`nearest_centroids`), then moves each centroid
    to the mean of its points (`cluster_means`); a centroid with no point keeps its position. As released, a region
    stops when `torch.allclose(centroids, updated, atol=tol)` (relative tolerance `KMEANS_RTOL`), keeping the
    centroids it had before that last update.

    Args:
        points: `(R, N, C)` float points, padded.
        valid: `(R, N)` bool, which points are real.
        initial_centroids: `(R, K, C)`.
        num_iters: maximum number of iterations.
        tol: absolute convergence tolerance.

    Returns:
        `(R, K, C)` centroids, in the order of `initial_centroids`.
    """
    centroids = initial_centroids
    active = torch.ones(points.shape[0], dtype=torch.bool, device=points.device)
    with torch.no_grad():
        point_norms = points.norm(dim=-1)
    for _ in range(num_iters):
        labels = nearest_centroids(points, valid, centroids, point_norms)
        updated = cluster_means(points, valid, labels, centroids)
        converged = torch.isclose(centroids, updated, rtol=KMEANS_RTOL, atol=tol).flatten(1).all(dim=1)
        active = active & ~converged
        centroids = torch.where(active[:, None, None], updated, centroids)
        if not bool(active.any()):
            break
    return centroids


def pack_regions(
    values: torch.Tensor, region_index: torch.Tensor, num_regions: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pack rows grouped by region (`region_index` sorted ascending) into a padded `(R, N_max, C)` tensor.

    Returns:
        padded `(R, N_max, C)`, valid `(R, N_max)` bool, counts `(R,)`.
    """
    counts = torch.bincount(region_index, minlength=num_regions)
    max_count = int(counts.max()) if num_regions else 0
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(values.shape[0], device=values.device) - starts[region_index]
    padded = values.new_zeros(num_regions, max_count, values.shape[-1])
    padded[region_index, slot] = values
    valid = torch.zeros(num_regions, max_count, dtype=torch.bool, device=values.device)
    valid[region_index, slot] = True
    return padded, valid, counts


class PixelReferObjectTokenizer(nn.Module):
    """Object tokens from region crops: position encoding, mask pooling, k-means, projection to the LLM width.

    Parameter names follow the released checkpoints: `pos_linear` (2 -> vision width) and `feat_linear`
    (vision width -> LLM width -> LLM width, GELU in between).
    """

    def __init__(self, config: PixelReferConfig):
        super().__init__()
        vision_width = config.vision_config.hidden_size
        text_width = config.text_config.hidden_size
        self.mask_num = config.region_settings.mask_num
        self.kmeans_iters = config.region_settings.kmeans_iters
        self.kmeans_tol = config.region_settings.kmeans_tol
        self.position_axis_swap = config.position_axis_swap
        # the dtype of mask pooling and k-means, as released: the full model casts the position-encoded features to
        # float32 (`feat.to(mask.dtype)`), Lite pools them in their own dtype (`None`; see `pooling_dtype`)
        self.pool_dtype: torch.dtype | None = torch.float32 if config.variant == "full" else None
        self.pos_linear = nn.Linear(2, vision_width)
        self.feat_linear = nn.Sequential(
            nn.Linear(vision_width, text_width), nn.GELU(), nn.Linear(text_width, text_width)
        )

    def pool_padded(
        self,
        crop_features: torch.Tensor,
        grid_sizes: torch.Tensor,
        grid_mask: torch.Tensor,
        boxes: torch.Tensor,
        image_sizes: torch.Tensor,
        mask_sizes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Position-encoded, mask-pooled and k-means-reduced region features, before the projection, zero-padded.

        Args:
            crop_features: `(sum(h*w), C)` vision features of all crops, crops concatenated, cells in raster order.
            grid_sizes: `(R, 2)` `(h, w)` of each crop's feature grid.
            grid_mask: `(sum(mh*mw),)` bool, which cells of each grid mask belong to their region.
            boxes: `(R, 4)` crop boxes `(top, left, bottom, right)` in image pixels.
            image_sizes: `(R, 2)` `(H, W)` of each region's image.
            mask_sizes: `(R, 2)` `(mh, mw)` of each grid mask; `None`: the feature grids. A crop whose grid mask has
                another size has its position-encoded features stretched to it (bilinear), as the released models do.

        Returns:
            features `(R, mask_num, C)` in `pooling_dtype` (full: float32; Lite: the features'), region r's tokens in
            rows `[0, tokens_per_region[r])` and zeros after, and tokens_per_region `(R,)` =
            `min(mask_num, cells in the region's grid mask)`.
        """
        num_regions = grid_sizes.shape[0]
        stretch = mask_sizes is not None and not torch.equal(mask_sizes.to(grid_sizes.device), grid_sizes)
        if stretch:
            crop_features = self.stretch_to_mask_grids(crop_features, grid_sizes, boxes, image_sizes, mask_sizes)
            grid_sizes = mask_sizes.to(grid_sizes.device)
        cells_per_crop = grid_sizes[:, 0] * grid_sizes[:, 1]
        cell_region = torch.repeat_interleave(torch.arange(num_regions, device=grid_mask.device), cells_per_crop)
        selected = grid_mask.nonzero(as_tuple=True)[0]

        features = crop_features[selected]
        if not stretch:
            positions = position_grids(grid_sizes, boxes, image_sizes, self.position_axis_swap)[selected]
            positions = positions.to(device=features.device, dtype=features.dtype)
            if torch.is_grad_enabled():
                features = features + self.pos_linear(positions)
            else:  # inference: add in place (the selected rows are a copy)
                features.add_(self.pos_linear(positions))
        features = features.to(self.pooling_dtype(features.dtype))

        feature_region = cell_region[selected]
        counts = torch.bincount(feature_region, minlength=num_regions)
        num_tokens = counts.clamp(max=self.mask_num)
        slot = (
            torch.arange(features.shape[0], device=features.device)
            - (torch.cumsum(counts, 0) - counts)[feature_region]
        )

        # Regions with at most mask_num cells keep their features as they are (raster order).
        tokens = features.new_zeros(num_regions, self.mask_num, features.shape[-1])
        kept = slot < self.mask_num
        tokens[feature_region[kept], slot[kept]] = features[kept]

        # Larger regions are reduced to mask_num centroids, all at once.
        needs_kmeans = counts > self.mask_num
        if bool(needs_kmeans.any()):
            tokens[needs_kmeans] = self.kmeans_tokens(features, feature_region, needs_kmeans)
        return tokens, num_tokens

    def pooling_dtype(self, features_dtype: torch.dtype) -> torch.dtype:
        """Dtype of mask pooling and k-means for features of `features_dtype`: `pool_dtype`, else the features' own
        (float16, which the released models never ran and whose range squared distances overflow, pools in float32)."""
        if self.pool_dtype is not None:
            return self.pool_dtype
        return torch.float32 if features_dtype == torch.float16 else features_dtype

    def kmeans_tokens(
        self, features: torch.Tensor, feature_region: torch.Tensor, needs_kmeans: torch.Tensor
    ) -> torch.Tensor:
        """`(M, mask_num, C)` k-means centroids of the M regions flagged in `needs_kmeans` `(R,)`, from the selected
        cell features `(N, C)` whose regions are `feature_region` `(N,)`."""
        in_kmeans = needs_kmeans[feature_region]
        kmeans_region = (torch.cumsum(needs_kmeans, 0) - 1)[feature_region[in_kmeans]]
        points, valid, point_counts = pack_regions(features[in_kmeans], kmeans_region, int(needs_kmeans.sum()))
        start = strided_kmeans_init(points, point_counts, self.mask_num)
        return batched_kmeans(points, valid, start, self.kmeans_iters, self.kmeans_tol)

    def stretch_to_mask_grids(
        self,
        crop_features: torch.Tensor,
        grid_sizes: torch.Tensor,
        boxes: torch.Tensor,
        image_sizes: torch.Tensor,
        mask_sizes: torch.Tensor,
    ) -> torch.Tensor:
        """Position-encoded features of every crop at its grid mask's size `(sum(mh*mw), C)`, in `pooling_dtype`.

        As the released `MaskExtractor` / `MaskPooling` (both variants): the position encoding of the feature grid is
        added first, in the features' dtype; the sum is cast to `pooling_dtype`, and a crop whose grid mask has another
        size (the image processor refitted it into the pixel budget) is resampled to it (bilinear,
        `align_corners=False`).
        """
        positions = position_grids(grid_sizes, boxes, image_sizes, self.position_axis_swap)
        features = crop_features + self.pos_linear(
            positions.to(device=crop_features.device, dtype=crop_features.dtype)
        )
        pieces = features.to(self.pooling_dtype(features.dtype)).split((grid_sizes[:, 0] * grid_sizes[:, 1]).tolist())
        stretched = []
        for piece, (height, width), mask_size in zip(pieces, grid_sizes.tolist(), mask_sizes.tolist(), strict=True):
            if [height, width] != mask_size:
                grid = piece.t().reshape(1, -1, height, width)
                grid = nn.functional.interpolate(grid, size=tuple(mask_size), mode="bilinear", align_corners=False)
                piece = grid.flatten(2)[0].t()
            stretched.append(piece)
        return torch.cat(stretched)

    def pool(self, *args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Like [`pool_padded`] without the padding: features `(T, C)`, `T = sum(tokens_per_region)`, regions in order."""
        tokens, num_tokens = self.pool_padded(*args)
        keep = torch.arange(self.mask_num, device=tokens.device)[None, :] < num_tokens[:, None]
        return tokens[keep], num_tokens

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """`feat_linear`: `(..., C)` vision-width features to `(..., D)` LLM-width object tokens."""
        return self.feat_linear(features.to(self.feat_linear[0].weight.dtype))

    def forward(
        self,
        crop_features: torch.Tensor,
        grid_sizes: torch.Tensor,
        grid_mask: torch.Tensor,
        boxes: torch.Tensor,
        image_sizes: torch.Tensor,
        mask_sizes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Object tokens `(T, D)` at the LLM width and tokens_per_region `(R,)`; arguments as in [`pool`]."""
        pooled, num_tokens = self.pool(crop_features, grid_sizes, grid_mask, boxes, image_sizes, mask_sizes)
        return self.project(pooled), num_tokens


__all__ = ["PixelReferObjectTokenizer", "batched_kmeans", "strided_kmeans_init"]
