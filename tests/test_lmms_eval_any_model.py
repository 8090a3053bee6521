# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Any-model mode: the packaged region tasks run through lmms-eval's own `llava_hf` model (a tiny random LLaVA built
in code), and the outlined video copies that models other than PixelRefer get for video documents."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from tiny_llava import build_tiny_llava
from video_fixtures import moving_square, read_all_frames, write_video

from pixelrefer_plugin.synthetic import encode_rle
from pixelrefer_plugin.visualize import COLOURS, draw_regions, region_outline

IMAGE_TASK = "pixelrefer_lvis_fixture"
GREEN = (40, 200, 40)
FPS = 4


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))


def image_key(image) -> str:
    pixels = np.asarray(image.convert("RGB"))
    return hashlib.sha256(pixels.tobytes() + str(pixels.shape).encode()).hexdigest()


# --- lmms-eval's llava_hf on the packaged tasks ------------------------------------------------------------------
@pytest.mark.parametrize("force_simple", [False, True], ids=["chat", "simple"])
def test_llava_hf_runs_a_region_task_on_the_outlined_image(
    task_dir, task_utils, tiny_llava, monkeypatch, force_simple
):
    """The chat path reads `doc_to_messages`, the simple path `doc_to_visual` + `doc_to_text`; both must hand LLaVA the
    outlined image and the "region 1 (outlined in red)" prompt."""
    pytest.importorskip("lmms_eval")
    pytest.importorskip("decord")  # lmms-eval's llava_hf imports it at module level
    from lmms_eval import evaluator
    from lmms_eval.tasks import TaskManager
    from transformers import LlavaProcessor

    seen = []  # (text, images) of every processor call: what the model was given
    original_call = LlavaProcessor.__call__

    def recording_call(self, *args, **kwargs):
        seen.append((kwargs.get("text"), kwargs.get("images")))
        return original_call(self, *args, **kwargs)

    monkeypatch.setattr(LlavaProcessor, "__call__", recording_call)
    task_manager = TaskManager("WARNING", include_path=str(task_dir), include_defaults=False)
    # device_map=cpu: llava_hf's default device_map "" is refused by transformers 5's from_pretrained
    result = evaluator.simple_evaluate(
        model="llava_hf",
        model_args=f"pretrained={tiny_llava},device=cpu,device_map=cpu,dtype=float32",
        tasks=[IMAGE_TASK],
        task_manager=task_manager,
        limit=8,
        log_samples=True,
        force_simple=force_simple,
    )
    metrics = result["results"][IMAGE_TASK]
    assert {"ssim,none", "siou,none"} <= set(metrics)
    assert 0.0 <= metrics["siou,none"] <= 100.0
    samples = result["samples"][IMAGE_TASK]
    assert len(samples) == 8
    for sample in samples:
        context = sample["arguments"][0]
        assert context == task_utils.doc_to_text(sample["doc"])
        assert "region 1 (outlined in red)" in context and "<region>" not in context
    answers = [sample["filtered_resps"][0] for sample in samples]
    # llava_hf turns a failed generate() into "" (logged, not raised): non-empty answers show that it ran, and since
    # every document has the same prompt, different answers show that the images reached the model
    assert all(answers) and len(set(answers)) > 1
    if not force_simple:
        assert all(sample["token_counts"][0]["output_tokens"] > 0 for sample in samples)

    texts = [text if isinstance(text, str) else text[0] for text, images in seen if images]
    assert len(texts) == 8
    assert all("region 1 (outlined in red)" in text and "<region>" not in text for text in texts)
    given = {image_key(image) for _, images in seen if images for image in images}
    docs = [sample["doc"] for sample in samples]
    outlined = {image_key(task_utils.doc_to_visual(doc)[0]) for doc in docs}
    from PIL import Image

    plain = {image_key(Image.open(doc["image"])) for doc in docs}
    assert given == outlined and not given & plain


# --- video documents: an outlined copy of the video ----------------------------------------------------------------
def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(pixels):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def is_colour(pixels: np.ndarray, colour, tolerance: int = 40) -> np.ndarray:
    return (np.abs(pixels.astype(int) - np.asarray(colour)) <= tolerance).all(axis=-1)


@pytest.fixture
def green_clip(tmp_path):
    """An 8-frame H.264 clip (4 fps) of a green square moving right on grey, and its masks."""
    square = moving_square(8, colour=GREEN)
    return write_video(tmp_path / "clip.mp4", square.frames, FPS), square


def video_doc(path, regions) -> dict:
    return {"id": "v", "image": None, "video": str(path), "regions": json.dumps(regions), "prompt": {}}


def check_outlined(frame: np.ndarray, source: np.ndarray, mask: np.ndarray, index: int) -> None:
    """`frame` (decoded from the overlay) shows region `index`'s outline and label, as `draw_regions` draws them on
    `source`, and elsewhere equals `source`.

    Tolerances: the overlay is H.264 (4:4:4, CRF 18), so pixel values move by a few levels; the band of 3 pixels along
    the mask boundary must be the region's colour (±40 per channel) in ≥ 90 % of its pixels, the region's inside
    (3 pixels in from the band) must keep the square's colour, and everything more than 2 pixels away from what
    `draw_regions` changes must stay within 16 levels of the source and hold no pixel of the outline colour.
    """
    colour = COLOURS[index % len(COLOURS)]
    band = region_outline(mask, 3)
    assert is_colour(frame[band], colour).mean() >= 0.9, frame[band].mean(axis=0)
    inside = mask & ~dilate(~mask, 6)
    assert inside.any() and is_colour(frame[inside], GREEN).mean() >= 0.9
    expected = np.asarray(draw_regions(source, [{"mask": mask}], labels=[str(index + 1)]).convert("RGB"))
    far = ~dilate((expected != source).any(axis=-1), 2)
    assert np.abs(frame[far].astype(int) - source[far]).max() <= 16
    assert not is_colour(frame[far], colour, tolerance=60).any()


def test_video_overlay_outlines_the_annotated_frame_only(task_utils, green_clip):
    path, square = green_clip
    doc = video_doc(path, [{"rle": encode_rle(square.mask(4)), "frame": 4}])
    (overlay,) = task_utils.doc_to_visual(doc)
    assert overlay != str(path) and Path(overlay).parent == task_utils.VIDEO_OVERLAY_CACHE
    source, drawn = read_all_frames(path), read_all_frames(overlay)
    assert len(drawn) == len(source) == 8  # same frames, same numbering
    check_outlined(drawn[4], source[4], square.mask(4), 0)
    for number in (0, 3, 5, 7):  # frames without a region are the source frames, with no outline colour
        assert np.abs(drawn[number].astype(int) - source[number]).max() <= 16
        assert not is_colour(drawn[number], COLOURS[0], tolerance=60).any()

    from pixelrefer_plugin.video_decoding import probe_video

    assert probe_video(overlay) == probe_video(str(path)) == (float(FPS), 8)
    # written once: the same document gets the same file, untouched; other regions get another file
    stamp = os.stat(overlay).st_mtime_ns
    assert task_utils.doc_to_visual(doc) == [overlay] and os.stat(overlay).st_mtime_ns == stamp
    other = task_utils.doc_to_visual(video_doc(path, [{"rle": encode_rle(square.mask(5)), "frame": 5}]))[0]
    assert other != overlay and Path(other).is_file()


def test_video_overlay_keeps_each_region_colour_on_frames_without_lower_numbered_regions(task_utils, green_clip):
    """Lite multi-frame regions: region 1 lies on frames 1 and 2, region 2 only on frame 6, which must show region 2's
    colour (blue) and number, as "region 2 (outlined in blue)" in the prompt says."""
    path, square = green_clip
    regions = [
        {"frames": {"1": {"rle": encode_rle(square.mask(1))}, "2": {"rle": encode_rle(square.mask(2))}}},
        {"frames": {"6": {"rle": encode_rle(square.mask(6))}}},
    ]
    (overlay,) = task_utils.doc_to_visual(video_doc(path, regions))
    source, drawn = read_all_frames(path), read_all_frames(overlay)
    check_outlined(drawn[1], source[1], square.mask(1), 0)
    check_outlined(drawn[2], source[2], square.mask(2), 0)
    check_outlined(drawn[6], source[6], square.mask(6), 1)
    assert not is_colour(drawn[6], COLOURS[0], tolerance=60).any()


def test_region_drawing_on_a_frame_matches_draw_regions(task_utils):
    """The per-frame drawing is pixel for pixel `draw_regions`' drawing (outlines, label boxes, anti-aliased text)."""
    frame = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    square = moving_square(3)
    masks = [{"mask": square.mask(0)}, {"mask": square.mask(2)}, {"box": [70, 50, 110, 80]}]
    expected = np.asarray(draw_regions(frame, masks).convert("RGB"))
    np.testing.assert_array_equal(task_utils._draw_on_frame(frame, list(enumerate(masks))), expected)
    # region 3 alone: its own colour and number, as in the drawing of all three
    alone = task_utils._draw_on_frame(frame, [(2, masks[2])])
    changed = (alone != frame).any(axis=-1)
    np.testing.assert_array_equal(alone[changed], expected[changed])


def test_video_overlay_needs_frame_placed_regions_and_existing_frames(task_utils, green_clip):
    path, square = green_clip
    assert task_utils.doc_to_visual(video_doc(path, [{"box": [4, 40, 20, 56]}])) == [str(path)]
    with pytest.raises(ValueError, match=r"has no frame\(s\) \[12\], which the document's regions lie on"):
        task_utils.doc_to_visual(video_doc(path, [{"rle": encode_rle(square.mask(0)), "frame": 12}]))
    assert not list(task_utils.VIDEO_OVERLAY_CACHE.glob(".*partial*"))


def test_pixelrefer_prompts_keep_region_tokens(task_utils, green_clip):
    path, square = green_clip
    doc = video_doc(path, [{"rle": encode_rle(square.mask(4)), "frame": 4}])
    doc["prompt"] = {"full": "<video>\nWhere does <region> go?", "lite": "Where does <region> go?"}
    assert task_utils.doc_to_text(doc, {"region_style": "tokens"}) == "<video>\nWhere does <region> go?"
    assert task_utils.doc_to_text(doc) == "Where does region 1 (outlined in red) go?"
