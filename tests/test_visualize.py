# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Region drawing: only the outline band and the label change, for masks, boxes and points, on images and frames."""

import numpy as np
import pytest
from video_fixtures import moving_square, write_video

from pixelrefer_plugin.synthetic import make_scene
from pixelrefer_plugin.visualize import COLOURS, describe_marks, draw_regions, region_outline, video_frame


def test_outline_is_the_inner_band_of_the_mask():
    mask = np.zeros((20, 20), dtype=bool)
    mask[5:15, 4:16] = True
    band = region_outline(mask, width=2)
    assert band[5, 4] and band[6, 5] and not band[7, 6]  # two pixels deep, not three
    assert not (band & ~mask).any()
    assert band.sum() == mask.sum() - (10 - 4) * (12 - 4)


@pytest.mark.parametrize(
    "region",
    [{"box": [30, 20, 90, 70]}, {"point": [60, 45]}, {"mask": "scene"}],
    ids=["box", "point", "mask"],
)
def test_drawing_changes_only_the_outline_and_label(region):
    image, objects = make_scene(np.random.default_rng(4), size=(120, 160), num_objects=2)
    if region.get("mask") == "scene":
        region = {"mask": objects[0].mask}
    drawn = np.asarray(draw_regions(image, [region], labels=[""], width=3))
    changed = (drawn != image).any(-1)
    assert changed.any()
    assert (drawn[changed] == COLOURS[0]).all()
    ys, xs = np.nonzero(changed)
    labelled = np.asarray(draw_regions(image, [region], labels=["1"], width=3))
    assert ((labelled != image).any(-1) & ~changed).any()  # the label adds pixels next to the outline
    if "box" in region:
        assert (xs.min(), ys.min(), xs.max(), ys.max()) == (30, 20, 89, 69)


def test_second_region_uses_the_second_colour_and_custom_colours():
    image = np.full((60, 80, 3), 255, dtype=np.uint8)
    drawn = np.asarray(draw_regions(image, [{"box": [0, 0, 20, 20]}, {"box": [40, 30, 70, 55]}], labels=["", ""]))
    assert tuple(drawn[0, 0]) == COLOURS[0] and tuple(drawn[30, 40]) == COLOURS[1]
    custom = np.asarray(draw_regions(image, [{"box": [0, 0, 20, 20]}], labels=[""], colours=[(1, 2, 3)]))
    assert tuple(custom[0, 0]) == (1, 2, 3)
    assert describe_marks(2) == ["region 1 (outlined in red)", "region 2 (outlined in blue)"]


def test_regions_on_a_video_frame(tmp_path):
    clip = moving_square(num_frames=6, size=(64, 96), top=24)
    frames, boxes = clip.frames, clip.boxes
    path = write_video(tmp_path / "clip.mp4", frames, fps=4)
    frame = video_frame(str(path), 3)
    assert frame.shape == (64, 96, 3)
    x0, y0, x1, y1 = boxes[3]
    inside = frame[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].reshape(-1, 3).mean(0)
    assert np.abs(inside - frames[3][(y0 + y1) // 2, (x0 + x1) // 2]).max() < 20  # lossy H.264
    drawn = np.asarray(draw_regions(frame, [{"box": boxes[3]}], labels=[""]))
    assert tuple(drawn[y0, x0]) == COLOURS[0]
