# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Video inputs: decoding and frame sampling, `<video>` expansion, token compression, batching and input errors."""

import copy
import re
import sys

import numpy as np
import pytest
import torch
from helpers import user_prompt
from video_fixtures import RED, moving_square, read_all_frames, video_prompt, write_video

from pixelrefer_plugin import PixelReferInputError, RegionInputError, video_decoding
from pixelrefer_plugin.presets import build_model_and_processor
from pixelrefer_plugin.video_decoding import VideoInputError, load_video

FPS = 4  # frame rate of the written videos; the processor samples the scene at 1 fps


@pytest.fixture(scope="module")
def lite():
    """(model, processor) of the Lite tiny preset."""
    return build_model_and_processor("pixelrefer-lite-tiny", seed=0)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """name -> (H.264 file at 4 fps, the frames written to it): a 12-frame and an 8-frame moving square."""
    folder = tmp_path_factory.mktemp("videos")
    written = {"long": moving_square(12), "short": moving_square(8, step=12, top=20)}
    return {
        name: (write_video(folder / f"{name}.mp4", square.frames, FPS), square) for name, square in written.items()
    }


def run_forward(model, inputs):
    with torch.no_grad():
        return model(**inputs)


def assert_is_frame(decoded, square, number):
    """`decoded` is frame `number` of `square`: closest written frame, and the square's inside has its colour."""
    errors = [np.abs(decoded.astype(np.int64) - written).mean() for written in square.frames.astype(np.int64)]
    assert int(np.argmin(errors)) == number, errors
    x0, y0, x1, y1 = square.boxes[number]
    inside = decoded[y0 + 3 : y1 - 3, x0 + 3 : x1 - 3].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(inside, RED, atol=20)


def pad_runs(text):
    """[(timestamp text, number of <|video_pad|>)] of each `Time {t}s:` frame prefix, in order."""
    return [(t, run.count("<|video_pad|>")) for t, run in re.findall(r"Time (\d+\.\d)s:((?:<\|video_pad\|>)*)", text)]


# ---------------------------------------------------------------------------------------------------- decoding


def test_file_is_sampled_at_the_requested_fps_and_frames_decode_at_their_index(videos):
    path, square = videos["long"]
    clip = load_video(path, [5, 7], sample_scene=True, fps=1.0, max_frames=180)
    sampled = list(range(0, len(square.frames), FPS))  # one frame a second
    assert clip.frame_indices == sampled == [0, 4, 8]
    assert clip.timestamps == pytest.approx([n / FPS for n in sampled])
    assert clip.frames.shape == (len(sampled), *square.frames.shape[1:])
    assert sorted(clip.region_frames) == [5, 7]
    assert clip.region_timestamps == pytest.approx({5: 5 / FPS, 7: 7 / FPS})
    for number, frame in [*zip(clip.frame_indices, clip.frames, strict=True), *clip.region_frames.items()]:
        assert_is_frame(frame, square, number)


def test_file_sampling_rate_and_max_frames(videos):
    path, square = videos["long"]
    total = len(square.frames)
    half = load_video(path, [], sample_scene=True, fps=2.0, max_frames=180)
    assert half.frame_indices == list(range(0, total, 2))
    capped = load_video(path, [], sample_scene=True, fps=float(FPS), max_frames=5)
    indices = capped.frame_indices
    assert len(indices) == 5 and indices[0] == 0 and indices[-1] == total - 1
    assert all(b > a for a, b in zip(indices, indices[1:], strict=False))
    assert capped.timestamps == pytest.approx([n / FPS for n in indices])
    for number, frame in zip(indices, capped.frames, strict=True):
        assert_is_frame(frame, square, number)
    # Lite decodes no scene: only the frames regions lie on
    regions_only = load_video(path, [3], sample_scene=False, fps=1.0, max_frames=180)
    assert regions_only.frames is None and regions_only.frame_indices == [] and list(regions_only.region_frames) == [3]


def test_region_crop_is_cut_from_the_full_resolution_frame_it_lies_on(tiny_processor, videos):
    path, square = videos["long"]
    mask = square.mask(5)
    on_video = tiny_processor(text="<video><region>", videos=path, regions=[{"mask": mask, "frame": 5}])
    frame = read_all_frames(path)[5]
    on_image = tiny_processor(text="<image><region>", images=frame, regions=[{"mask": mask}])
    assert on_video["region_image_sizes"].tolist() == [list(square.frames.shape[1:3])]
    for name in ("region_pixel_values", "region_grid_thw", "region_grid_mask", "region_boxes", "region_image_sizes"):
        assert torch.equal(on_video[name], on_image[name]), name


# ---------------------------------------------------------------------------------------------------- full variant


def test_full_variant_video_forward_and_generate(tiny, videos):
    model, processor = tiny
    path, square = videos["long"]
    prompt = video_prompt(processor, "What is <region> doing?")
    inputs = processor(text=prompt, videos=path, regions=[{"mask": square.mask(5), "frame": 5}])
    frames, height, width = inputs["video_grid_thw"][0].tolist()
    keep = inputs["video_compression_mask"]
    assert frames == 3 and inputs["video_merge_sizes"].tolist() == [2]
    assert keep.dtype == torch.bool and keep.shape == (frames * height * width // 4,)
    assert inputs["pixel_values_videos"].shape[0] == frames * height * width

    ids = inputs["input_ids"][0]
    assert int((ids == processor.video_token_id).sum()) == int(keep.sum())
    text = processor.tokenizer.decode(ids)
    assert "<video>" not in text
    sampled = range(0, len(square.frames), FPS)
    assert pad_runs(text) == [
        (f"{n / FPS:.1f}", n_kept) for n, n_kept in zip(sampled, keep.view(frames, -1).sum(1).tolist(), strict=True)
    ]
    assert "Time 0.0s:" in text and ",Time 1.0s:" in text and ",Time 2.0s:" in text

    output = run_forward(model, inputs)
    assert output.logits.shape[:2] == inputs["input_ids"].shape
    assert output.object_tokens_per_region.tolist() == [int((ids == processor.region_token_id).sum())]
    # the frames reach the LLM
    blank = dict(inputs, pixel_values_videos=torch.zeros_like(inputs["pixel_values_videos"]))
    assert not torch.allclose(run_forward(model, blank).logits[0, -1], output.logits[0, -1])

    length = inputs["input_ids"].shape[1]
    generated = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert generated.shape == (1, length + 4)
    # cached greedy decoding equals the argmax of one forward pass over the whole generated sequence
    whole = dict(
        inputs,
        input_ids=generated[:, :-1],
        attention_mask=torch.ones_like(generated[:, :-1]),
    )
    logits = run_forward(model, whole).logits[0, length - 1 :]
    chosen = logits.gather(-1, generated[0, length:, None])[:, 0]
    torch.testing.assert_close(chosen, logits.max(dim=-1).values, rtol=0, atol=1e-5)


def keep_per_frame(inputs):
    frames, height, width = inputs["video_grid_thw"][0].tolist()
    return inputs["video_compression_mask"].view(frames, height // 2, width // 2)


def test_static_frames_keep_one_token_and_moving_frames_keep_the_changed_tokens(tiny_processor, tmp_path):
    processor = tiny_processor
    static = moving_square(12, step=0)
    # a static file (lossy codec) and static frames given directly both compress every frame after the first
    static_path = write_video(tmp_path / "static.mp4", static.frames, FPS)
    for video in (static_path, {"frames": static.frames[:3], "timestamps": [0.0, 1.0, 2.0]}):
        keep = keep_per_frame(processor(text="<video>", videos=video))
        assert keep[0].all()
        assert keep[1:].flatten(1).sum(1).tolist() == [1, 1]

    moving = moving_square(12)
    sampled = [0, 4, 8]
    frames = moving.frames[sampled]
    inputs = processor(text="<video>", videos={"frames": frames, "timestamps": [0.0, 1.0, 2.0]})
    keep = keep_per_frame(inputs)
    assert keep[0].all()
    assert all(1 < int(k.sum()) < k.numel() for k in keep[1:])
    # a token of frame t is kept exactly where frame t differs from frame t - 1 (2 px slack for the resize)
    height, width = frames.shape[1:3]
    _, grid_h, grid_w = inputs["video_grid_thw"][0].tolist()
    rows, cols = height / (grid_h * 14), width / (grid_w * 14)  # original pixels per resized pixel
    checked = {True: 0, False: 0}
    for t in (1, 2):
        changed = (frames[t] != frames[t - 1]).any(axis=-1)
        for r in range(grid_h // 2):
            for c in range(grid_w // 2):
                y0, y1 = round(28 * r * rows), round(28 * (r + 1) * rows)
                x0, x1 = round(28 * c * cols), round(28 * (c + 1) * cols)
                surely = changed[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].any()
                possibly = changed[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2].any()
                if surely or not possibly:
                    assert bool(keep[t, r, c]) == surely, (t, r, c)
                    checked[bool(surely)] += 1
    assert checked[True] >= 2 and checked[False] >= 2

    # without a threshold nothing is dropped
    processor_without = copy.deepcopy(processor)
    processor_without.video_compression_threshold = None
    keep = keep_per_frame(processor_without(text="<video>", videos={"frames": frames, "timestamps": [0.0, 1.0, 2.0]}))
    assert keep.all()


# ---------------------------------------------------------------------------------------------------- batching


def video_batch(variant, processor, videos):
    (long_path, long), (short_path, short) = videos["long"], videos["short"]
    if variant == "full":
        prompts = [
            video_prompt(processor, "What is <region>?"),
            video_prompt(processor, "Compare <region> and <region>."),
        ]
        regions = [
            [{"mask": long.mask(5), "frame": 5}],
            [{"mask": short.mask(0), "frame": 0}, {"box": short.boxes[6], "frame": 6}],
        ]
    else:
        prompts = [
            user_prompt(processor, "Where does <region> go?", image=False),
            user_prompt(processor, "Compare <region> and <region>.", image=False),
        ]
        regions = [
            [{"frames": {2: {"mask": long.mask(2)}, 9: {"box": long.boxes[9]}}}],
            [
                {"mask": short.mask(1), "frame": 1},
                {"frames": {0: {"mask": short.mask(0)}, 7: {"mask": short.mask(7)}}},
            ],
        ]
    return prompts, [long_path, short_path], regions


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_video_batch_equals_one_by_one(request, videos, variant):
    model, processor = request.getfixturevalue("tiny" if variant == "full" else "lite")
    prompts, paths, regions = video_batch(variant, processor, videos)
    batch = processor(text=prompts, videos=paths, regions=regions)
    if variant == "full":
        assert batch["video_grid_thw"][:, 0].tolist() == [3, 2]  # 12 and 8 frames at 4 fps, sampled at 1 fps
    else:
        assert "pixel_values_videos" not in batch
        text = processor.tokenizer.decode(batch["input_ids"][0])
        span = "<REGION>" * processor.mask_num
        assert f"[Time {round(2 / FPS, 1)}:{span},Time {round(9 / FPS, 1)}:{span}]" in text
    batched = run_forward(model, batch)
    generated = model.generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    new_tokens = generated[:, batch["input_ids"].shape[1] :]
    for index in range(2):
        single = processor(text=prompts[index], videos=paths[index], regions=regions[index])
        length = single["input_ids"].shape[1]
        torch.testing.assert_close(
            batched.logits[index, -length:], run_forward(model, single).logits[0], rtol=1e-4, atol=1e-4
        )
        alone = model.generate(**single, max_new_tokens=5, min_new_tokens=5, do_sample=False)
        assert new_tokens[index].tolist() == alone[0, length:].tolist()


# ---------------------------------------------------------------------------------------------------- frames given as a dict


def test_presampled_frames_give_the_same_inputs_as_the_file(tiny_processor, videos):
    path, square = videos["long"]
    decoded = read_all_frames(path)
    sampled = list(range(0, len(square.frames), FPS))
    video = {
        "frames": [decoded[n] for n in sampled],
        "timestamps": [n / FPS for n in sampled],
        "frame_indices": sampled,
    }
    prompt = video_prompt(tiny_processor, "What is <region>?")
    region = {"mask": square.mask(4), "frame": 4}
    from_file = tiny_processor(text=prompt, videos=path, regions=[region])
    from_dict = tiny_processor(text=prompt, videos=video, regions=[region])
    assert sorted(from_dict) == sorted(from_file)
    for name in from_file:
        assert torch.equal(from_dict[name], from_file[name]), name


def test_presampled_frames_use_their_own_timestamps_and_frame_numbers(tiny_processor):
    square = moving_square(3, step=30)
    timestamps = [0.5, 1.5, 3.0]
    video = {"frames": square.frames, "timestamps": timestamps}  # a (T, H, W, 3) array, frames numbered 0..T-1
    inputs = tiny_processor(text="<video><region>", videos=video, regions=[{"box": square.boxes[2], "frame": 2}])
    kept = keep_per_frame(inputs).flatten(1).sum(1).tolist()
    text = tiny_processor.tokenizer.decode(inputs["input_ids"][0])
    assert pad_runs(text) == [(f"{t:.1f}", n) for t, n in zip(timestamps, kept, strict=True)]
    frame = square.frames[2]
    on_image = tiny_processor(text="<image><region>", images=frame, regions=[{"box": square.boxes[2]}])
    assert torch.equal(inputs["region_pixel_values"], on_image["region_pixel_values"])


# ---------------------------------------------------------------------------------------------------- input errors


def test_region_frame_out_of_range_of_the_file(tiny_processor, videos):
    path, square = videos["long"]
    total = len(square.frames)
    with pytest.raises(VideoInputError, match=re.escape(f"videos[sample 0][video 0]: frame {total} is out of range")):
        tiny_processor(text="<video><region>", videos=path, regions=[{"box": [0, 0, 8, 8], "frame": total}])


def test_region_on_a_frame_that_was_not_sampled_lists_the_frames(tiny_processor):
    square = moving_square(3)
    indices = [0, 4, 8]
    video = {"frames": square.frames, "timestamps": [0.0, 1.0, 2.0], "frame_indices": indices}
    with pytest.raises(VideoInputError) as error:
        tiny_processor(
            text=["<video>", "<video><region>"],
            videos=[video, video],
            regions=[[], [{"box": [0, 0, 8, 8], "frame": 5}]],
        )
    message = str(error.value)
    assert message.startswith("videos[sample 1][video 0]: frame 5 was not sampled")
    assert str(indices) in message


def test_unreadable_video_file(tiny_processor, tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoInputError, match=r"^videos\[sample 0\]\[video 0\]: cannot read video file"):
        tiny_processor(text="<video>", videos=str(garbage))


def test_missing_video_file(tiny_processor, tmp_path):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(VideoInputError, match=r"^videos\[sample 0\]\[video 0\]: video file .* does not exist"):
        tiny_processor(text="<video>", videos=missing)


def test_empty_video(tiny_processor):
    with pytest.raises(VideoInputError, match=r"^videos\[sample 0\]\[video 0\]: the video holds no frame"):
        tiny_processor(text="<video>", videos={"frames": [], "timestamps": []})


def test_timestamps_not_increasing(tiny_processor):
    frames = moving_square(3).frames
    with pytest.raises(
        VideoInputError, match=r"^videos\[sample 0\]\[video 0\]: timestamps must be strictly increasing"
    ):
        tiny_processor(text="<video>", videos={"frames": frames, "timestamps": [0.0, 2.0, 1.0]})


def test_lite_prompt_with_a_video_placeholder_is_refused(lite):
    _, processor = lite
    square = moving_square(3)
    video = {"frames": square.frames, "timestamps": [0.0, 1.0, 2.0]}
    with pytest.raises(
        PixelReferInputError, match=r"^text\[sample 0\]: PixelRefer-Lite reads no scene tokens.*<video>"
    ):
        processor(text="<video><region>", videos=video, regions=[{"mask": square.mask(1), "frame": 1}])


def test_full_variant_refuses_multi_frame_regions(tiny_processor):
    square = moving_square(3)
    video = {"frames": square.frames, "timestamps": [0.0, 1.0, 2.0]}
    region = {"frames": {0: {"mask": square.mask(0)}, 2: {"mask": square.mask(2)}}}
    with pytest.raises(RegionInputError, match=r"^regions\[sample 0\]\[region 0\]: the full variant takes one"):
        tiny_processor(text="<video><region>", videos=video, regions=[region])


def test_video_region_on_a_sample_without_that_video(tiny_processor):
    square = moving_square(3)
    video = {"frames": square.frames, "timestamps": [0.0, 1.0, 2.0]}
    with pytest.raises(
        RegionInputError, match=r"^regions\[sample 1\]\[region 0\]: video index 0 is out of range.* 0 vid"
    ):
        tiny_processor(
            text=["<video><region>", "<region>"],
            videos=[video, None],
            regions=[[{"mask": square.mask(0), "frame": 0}], [{"mask": square.mask(1), "frame": 1}]],
        )
    with pytest.raises(
        RegionInputError, match=r"^regions\[sample 0\]\[region 0\]: video index 1 is out of range.* 1 vid"
    ):
        tiny_processor(
            text="<video><region>", videos=video, regions=[{"mask": square.mask(0), "frame": 0, "video": 1}]
        )


@pytest.mark.parametrize("prompt, found", [("<region>", 0), ("<video><video><region>", 2)])
def test_video_placeholder_count_must_match(tiny_processor, prompt, found):
    square = moving_square(3)
    video = {"frames": square.frames, "timestamps": [0.0, 1.0, 2.0]}
    expected = f"text[sample 0]: the prompt holds {found} <video> placeholder(s) but 1 video(s) were given"
    with pytest.raises(PixelReferInputError, match=re.escape(expected)):
        tiny_processor(text=prompt, videos=video, regions=[{"mask": square.mask(0), "frame": 0}])


# ---------------------------------------------------------------------------------------------- decoder backends


@pytest.mark.parametrize("name", ["long", "short"])
def test_decord_and_pyav_decode_the_same_frames(videos, monkeypatch, name):
    """Same frame count, fps, sampled numbers and timestamps; pixels within ±2 per channel.

    Both decoders run ffmpeg's H.264 decoder (bit-exact by the standard) and convert YUV 4:2:0 to RGB with swscale;
    here the pixels come out identical, but decord bundles its own ffmpeg build, whose conversion may round
    differently, hence the small tolerance. Frame identity is checked against the written frames as well.
    """
    pytest.importorskip("decord")
    path, square = videos[name]
    clips, probes = {}, {}
    for backend in ("pyav", "decord"):
        monkeypatch.setenv(video_decoding.VIDEO_BACKEND_ENV, backend)
        assert video_decoding.video_backend() == backend
        probes[backend] = video_decoding.probe_video(str(path))
        clips[backend] = load_video(path, [1, 5], sample_scene=True, fps=2.0, max_frames=180)
    assert probes["pyav"] == probes["decord"] == (float(FPS), len(square.frames))
    pyav, decord = clips["pyav"], clips["decord"]
    assert pyav.frame_indices == decord.frame_indices == list(range(0, len(square.frames), 2))
    assert pyav.timestamps == decord.timestamps
    assert pyav.region_timestamps == decord.region_timestamps
    assert sorted(pyav.region_frames) == sorted(decord.region_frames) == [1, 5]
    assert pyav.frames.shape == decord.frames.shape and decord.frames.dtype == np.uint8
    np.testing.assert_allclose(decord.frames.astype(int), pyav.frames.astype(int), atol=2, rtol=0)
    for number in (1, 5):
        np.testing.assert_allclose(
            decord.region_frames[number].astype(int), pyav.region_frames[number].astype(int), atol=2, rtol=0
        )
    for number, frame in [*zip(decord.frame_indices, decord.frames, strict=True), *decord.region_frames.items()]:
        assert_is_frame(frame, square, number)


def _record_decoders(monkeypatch) -> list[str]:
    """Wrap both decoders so that each call appends its backend's name to the returned list."""
    calls = []
    for backend in ("pyav", "decord"):
        original = getattr(video_decoding, f"_decode_with_{backend}")

        def spy(path, indices, _original=original, _backend=backend):
            calls.append(_backend)
            return _original(path, indices)

        monkeypatch.setattr(video_decoding, f"_decode_with_{backend}", spy)
    return calls


@pytest.mark.parametrize(
    "value, decord_importable, expected",
    [
        (None, True, "decord"),
        ("auto", True, "decord"),
        ("", True, "decord"),
        ("pyav", True, "pyav"),
        (" PyAV ", True, "pyav"),
        ("decord", True, "decord"),
        (None, False, "pyav"),
        ("auto", False, "pyav"),
        ("pyav", False, "pyav"),
    ],
)
def test_backend_switch_selects_the_decoder(videos, monkeypatch, value, decord_importable, expected):
    if decord_importable:
        pytest.importorskip("decord")
    else:
        monkeypatch.setitem(sys.modules, "decord", None)  # `import decord` raises ImportError
    if value is None:
        monkeypatch.delenv(video_decoding.VIDEO_BACKEND_ENV, raising=False)
    else:
        monkeypatch.setenv(video_decoding.VIDEO_BACKEND_ENV, value)
    calls = _record_decoders(monkeypatch)
    path, square = videos["long"]
    assert video_decoding.video_backend() == expected
    clip = load_video(path, [3], sample_scene=False, fps=1.0, max_frames=180)
    assert calls == [expected]
    assert_is_frame(clip.region_frames[3], square, 3)


@pytest.mark.parametrize("value", ["ffmpeg", "torchvision", "decord2"])
def test_unknown_backend_is_refused(videos, monkeypatch, value):
    monkeypatch.setenv(video_decoding.VIDEO_BACKEND_ENV, value)
    expected = f"videos: PIXELREFER_VIDEO_BACKEND={value!r} is not a video backend; expected one of auto, pyav, decord"
    with pytest.raises(VideoInputError, match=re.escape(expected)):
        video_decoding.video_backend()
    with pytest.raises(ValueError, match=re.escape(expected)):  # unchanged through the file reader
        load_video(videos["long"][0], [0], sample_scene=False, fps=1.0, max_frames=180)


def test_decord_backend_without_decord_is_refused(videos, monkeypatch):
    monkeypatch.setitem(sys.modules, "decord", None)
    monkeypatch.setenv(video_decoding.VIDEO_BACKEND_ENV, "decord")
    pattern = (
        r"^videos: PIXELREFER_VIDEO_BACKEND='decord' asks for decord, which cannot be imported .*'auto' or 'pyav'"
    )
    with pytest.raises(VideoInputError, match=pattern):
        load_video(videos["long"][0], [0], sample_scene=False, fps=1.0, max_frames=180)
    with pytest.raises(VideoInputError, match=pattern):
        video_decoding.probe_video(str(videos["long"][0]))
