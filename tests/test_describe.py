# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer describe` and `pixelrefer_plugin.describe`: every region flag, video frames, Lite, the overlay, and the
error each bad flag gives."""

import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import build_checkpoint, run_describe
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils
from transformers import AutoModelForImageTextToText, AutoProcessor, TextStreamer
from video_fixtures import moving_square, write_video

from pixelrefer_plugin import PixelReferInputError
from pixelrefer_plugin.cli import main
from pixelrefer_plugin.describe import default_question, describe, load_model, load_processor
from pixelrefer_plugin.prompts import DLC_BENCH, VIDEOREFER_BENCH_D
from pixelrefer_plugin.synthetic import make_scene
from pixelrefer_plugin.testing.released_layout import write_released_checkpoint
from pixelrefer_plugin.visualize import COLOURS, region_outline

MAX_NEW_TOKENS = 6
FRAME = 3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_checkpoint("pixelrefer-tiny", tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def lite_checkpoint(tmp_path_factory):
    return build_checkpoint("pixelrefer-lite-tiny", tmp_path_factory.mktemp("lite-tiny"))


@functools.cache
def loaded(path: str):
    """(model, processor) as `from_pretrained` gives them, independently of the code under test."""
    model = AutoModelForImageTextToText.from_pretrained(path, trust_remote_code=True, dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(path, trust_remote_code=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Scene image, its first object and region files in every format, and a 6-frame H.264 clip at 2 fps."""
    folder = tmp_path_factory.mktemp("describe")
    image, objects = make_scene(np.random.default_rng(1), size=(160, 224), num_objects=3)
    target = objects[0]
    Image.fromarray(image).save(folder / "scene.png")
    Image.fromarray(target.mask.astype(np.uint8) * 255).save(folder / "mask.png")
    np.save(folder / "mask.npy", target.mask)
    np.save(folder / "small.npy", np.ones((10, 10), dtype=bool))
    rle = mask_utils.encode(np.asfortranarray(target.mask.astype(np.uint8)))
    rle = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()}
    (folder / "rle.json").write_text(json.dumps(rle))
    (folder / "broken.png").write_text("not an image")
    (folder / "not-a-checkpoint").mkdir()
    (folder / "not-a-checkpoint" / "notes.txt").write_text("hello")
    square = moving_square(6, size=(96, 128))
    video = write_video(folder / "clip.mp4", square.frames, fps=2)
    return {
        "folder": folder,
        "image": image,
        "object": target,
        "scene": str(folder / "scene.png"),
        "rle": rle,
        "video": str(video),
        "square": square,
    }


def expected_answer(path: str, source, region: dict, text: str, on_video: bool = False) -> str:
    """`model.generate`'s greedy answer for the same inputs, built with the processor directly."""
    model, processor = loaded(path)
    item = [] if "<video>" in text else [{"type": "video" if on_video else "image"}]
    messages = [{"role": "user", "content": item + [{"type": "text", "text": text}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    media = {"videos": source} if on_video else {"images": source}
    inputs = processor(text=prompt, regions=[region], **media)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
    return processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def centre(box: list[int]) -> list[float]:
    return [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]


# ---------------------------------------------------------------------------------------------------- answers


@pytest.mark.parametrize("flag", ["mask-png", "mask-npy", "box", "point", "rle-text", "rle-file"])
def test_each_region_flag_streams_the_answer_generate_gives(checkpoint, files, capsys, flag):
    target, folder = files["object"], files["folder"]
    flags = {
        "mask-png": (["--mask", folder / "mask.png"], {"mask": target.mask}),
        "mask-npy": (["--mask", folder / "mask.npy"], {"mask": target.mask}),
        "box": (["--box", ",".join(map(str, target.box))], {"box": target.box}),
        "point": (["--point", "{},{}".format(*centre(target.box))], {"point": centre(target.box)}),
        "rle-text": (["--rle", json.dumps(files["rle"])], {"rle": files["rle"]}),
        "rle-file": (["--rle", folder / "rle.json"], {"rle": files["rle"]}),
    }
    region_args, region = flags[flag]
    code, out, err = run_describe(
        capsys, "--model", checkpoint, "--image", files["scene"], *region_args, "--max-new-tokens", MAX_NEW_TOKENS
    )
    assert code == 0, err
    expected = expected_answer(checkpoint, files["image"], region, DLC_BENCH.full)
    assert expected.strip()
    assert out == expected + "\n"  # what TextStreamer printed, token by token, is the whole answer


def test_regions_change_the_answer_and_a_custom_question_is_used(checkpoint, files, capsys):
    box = files["object"].box
    answers = [
        run_describe(
            capsys, "--model", checkpoint, "--image", files["scene"], *args, "--max-new-tokens", MAX_NEW_TOKENS
        )
        for args in (
            ["--box", "150,100,220,160"],
            ["--box", ",".join(map(str, box)), "--question", "Is <region> red?"],
        )
    ]
    assert all(code == 0 for code, _, _ in answers)
    assert answers[1][1] == expected_answer(checkpoint, files["image"], {"box": box}, "Is <region> red?") + "\n"
    assert answers[0][1] != answers[1][1]


def test_video_frame_is_the_region_frame_of_the_whole_video_scene(checkpoint, files, capsys):
    box = files["square"].boxes[FRAME]
    code, out, err = run_describe(
        capsys,
        *("--model", checkpoint, "--video", files["video"], "--frame", FRAME),
        *("--box", ",".join(map(str, box)), "--max-new-tokens", MAX_NEW_TOKENS),
    )
    assert code == 0, err
    region = {"box": box, "frame": FRAME}
    assert out == expected_answer(checkpoint, files["video"], region, VIDEOREFER_BENCH_D.full, on_video=True) + "\n"


def test_lite_on_a_video_frame_and_on_an_image(lite_checkpoint, files, capsys):
    box = files["square"].boxes[FRAME]
    code, out, err = run_describe(
        capsys,
        *("--model", lite_checkpoint, "--video", files["video"], "--frame", FRAME),
        *("--box", ",".join(map(str, box)), "--max-new-tokens", MAX_NEW_TOKENS),
    )
    assert code == 0, err
    lite_question = VIDEOREFER_BENCH_D.for_variant("lite")
    region = {"box": box, "frame": FRAME}
    assert out == expected_answer(lite_checkpoint, files["video"], region, lite_question, on_video=True) + "\n"

    args = ["--mask", files["folder"] / "mask.png", "--max-new-tokens", MAX_NEW_TOKENS]
    code, out, err = run_describe(capsys, "--model", lite_checkpoint, "--image", files["scene"], *args)
    assert code == 0, err
    assert (
        out == expected_answer(lite_checkpoint, files["image"], {"mask": files["object"].mask}, DLC_BENCH.full) + "\n"
    )


def test_python_api_streams_and_returns_the_answer(checkpoint, files, capsys):
    processor, model = load_processor(checkpoint), load_model(checkpoint, "cpu", "float32")
    assert default_question(processor.variant, on_video=False) == DLC_BENCH.full
    streamer = TextStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    region = {"box": files["object"].box}
    capsys.readouterr()
    answer = describe(model, processor, files["image"], region, max_new_tokens=MAX_NEW_TOKENS, streamer=streamer)
    expected = expected_answer(checkpoint, files["image"], region, DLC_BENCH.full)
    assert answer == expected.strip() and capsys.readouterr().out == expected + "\n"
    with pytest.raises(PixelReferInputError, match="question: 'Describe it.' holds 0 <region>"):
        describe(model, processor, files["image"], region, "Describe it.")


def test_overlay_outlines_the_region_on_the_image(checkpoint, files, capsys, tmp_path):
    overlay = tmp_path / "overlay.png"
    args = ["--mask", files["folder"] / "mask.png", "--save-overlay", overlay, "--max-new-tokens", 2]
    code, _, err = run_describe(capsys, "--model", checkpoint, "--image", files["scene"], *args)
    assert code == 0, err
    image, mask = files["image"], files["object"].mask
    drawn = np.asarray(Image.open(overlay).convert("RGB"))
    assert drawn.shape == image.shape
    changed = (drawn != image).any(axis=-1)
    outline = region_outline(mask, 3)
    assert (drawn[outline] == COLOURS[0]).all()
    assert changed[outline & (image != COLOURS[0]).any(axis=-1)].all()
    # everything else that changed is the "1" label drawn at the region's top-left corner
    rows, cols = np.nonzero(mask)
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (8, 8))).textbbox((0, 0), "1")
    x0, y0 = int(cols.min()), max(0, int(rows.min()) - (bottom - top) - 4)
    label = np.zeros_like(mask)
    label[y0 : y0 + bottom - top + 5, x0 : x0 + right - left + 5] = True
    assert changed[~outline].any() and not (changed & ~outline & ~label).any()


# ---------------------------------------------------------------------------------------------------- errors

BAD_FLAGS = {
    "box with 3 numbers": (["--box", "1,2,3"], ["--box '1,2,3'", "4 comma-separated numbers x0,y0,x1,y1"]),
    "box with text": (["--box", "1,2,three,4"], ["--box '1,2,three,4'", "'three' is not a number"]),
    "empty box": (["--box", "10,10,10,20"], ["--box '10,10,10,20'", "is empty; expected x1 > x0"]),
    "box outside": (["--box", "0,0,300,20"], ["--box '0,0,300,20'", "outside the 224x160 (width x height)"]),
    "point outside": (
        ["--point", "224,20"],
        ["--point '224,20'", "outside the 224x160 (width x height)", "0 <= x < 224"],
    ),
    "point with 3 numbers": (["--point", "1,2,3"], ["--point '1,2,3'", "2 comma-separated numbers x,y"]),
    "mask of the wrong shape": (["--mask", "{folder}/small.npy"], ["--mask", "shape (10, 10)", "(160, 224)"]),
    "missing mask file": (["--mask", "{folder}/missing.png"], ["--mask", "missing.png", "no such file"]),
    "unreadable mask": (["--mask", "{folder}/broken.png"], ["--mask", "broken.png", "cannot read the mask image"]),
    "bad RLE JSON": (["--rle", '{"size": [160, 224], "counts": '], ["--rle", "invalid JSON"]),
    "RLE of another size": (
        ["--rle", '{"size": [10, 10], "counts": "0"}'],
        ["--rle", "rle size is 10x10 (width x height)"],
    ),
    "RLE neither JSON nor file": (["--rle", "{folder}/missing.json"], ["--rle", "or the path of a .json file"]),
    "question without <region>": (
        ["--box", "1,1,20,20", "--question", "What is this?"],
        ["--question 'What is this?'", "holds 0 <region>", "expected exactly one"],
    ),
    "question with two <region>": (
        ["--box", "1,1,20,20", "--question", "Is <region> left of <region>?"],
        ["--question", "holds 2 <region>"],
    ),
    "frame with an image": (["--box", "1,1,20,20", "--frame", "0"], ["--frame '0'", "--frame is for --video"]),
    "overlay with no image suffix": (["--box", "1,1,20,20", "--save-overlay", "out.txt2"], ["--save-overlay"]),
    "zero new tokens": (["--box", "1,1,20,20", "--max-new-tokens", "0"], ["--max-new-tokens '0'", "positive"]),
}


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_bad_image_flags_exit_2_naming_the_flag(checkpoint, files, capsys, case):
    args, messages = BAD_FLAGS[case]
    args = [str(arg).replace("{folder}", str(files["folder"])) for arg in args]
    code, out, err = run_describe(capsys, "--model", checkpoint, "--image", files["scene"], *args)
    assert code == 2 and out == ""
    assert err.startswith("pixelrefer describe: error: ")
    for message in messages:
        assert message in err, err


@pytest.mark.parametrize(
    ("frame", "messages"),
    [
        (None, ["--video", "needs --frame N"]),
        ("99", ["--frame '99'", "the video has 6 frame(s); expected an index in 0..5"]),
        ("-1", ["--frame '-1'", "expected a frame index >= 0"]),
    ],
)
def test_bad_video_frames_exit_2_naming_the_flag(checkpoint, files, capsys, frame, messages):
    args = ["--model", checkpoint, "--video", files["video"], "--box", "1,1,20,20"]
    code, _, err = run_describe(capsys, *args, *(["--frame", frame] if frame is not None else []))
    assert code == 2
    for message in messages:
        assert message in err, err


def test_a_mask_must_match_the_video_frame(checkpoint, files, capsys):
    args = ["--video", files["video"], "--frame", FRAME, "--mask", files["folder"] / "mask.png"]
    code, _, err = run_describe(capsys, "--model", checkpoint, *args)
    assert code == 2 and "--mask" in err and "its image is 128x96 (width x height)" in err


def test_bad_model_folders_exit_2_naming_model(files, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    region = ["--image", files["scene"], "--box", "1,1,20,20"]
    code, _, err = run_describe(capsys, "--model", files["folder"] / "not-a-checkpoint", *region)
    assert code == 2 and "--model" in err and "has no config.json" in err
    code, _, err = run_describe(capsys, "--model", "missing-folder", *region)
    assert code == 2 and "--model 'missing-folder': is no folder here; expected a checkpoint folder" in err
    code, _, err = run_describe(capsys, "--model", "pixelrefer-tiny", *region)
    assert code == 2 and "is a preset name" in err and "pixelrefer build pixelrefer-tiny --out DIR" in err


def test_a_released_name_offline_prints_the_download_and_convert_commands(files, tmp_path):
    """`--model pixelrefer-7b` with no folder of that name, offline and nothing cached: one line per command, fast."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    args = ["--model", "pixelrefer-7b", "--image", str(files["scene"]), "--box", "1,1,20,20"]
    done = subprocess.run(
        [sys.executable, "-m", "pixelrefer_plugin.cli", "describe", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "hf download Alibaba-DAMO-Academy/PixelRefer-7B --local-dir" in done.stderr
    assert "pixelrefer convert pixelrefer-7b-released --out" in done.stderr


def test_a_released_layout_folder_is_described_directly(files, tmp_path, capsys):
    model, processor = loaded(build_checkpoint("pixelrefer-tiny", tmp_path / "tiny"))
    released = write_released_checkpoint(model, processor.tokenizer, tmp_path / "released")
    region = ["--image", files["scene"], "--box", "10,10,60,50", "--max-new-tokens", MAX_NEW_TOKENS]
    code, out, err = run_describe(capsys, "--model", released, *region)
    assert code == 0, err
    # the released layout loads with the released settings (axis swap, uint8 grid): its own answer, not the preset's
    released_model, released_processor = loaded(str(released))
    assert released_model.config.position_axis_swap and released_processor.region_grid_rounding == "uint8"
    assert out.strip() and out == run_describe(capsys, "--model", released, *region)[1]


@pytest.mark.parametrize(
    "args",
    [
        ["--box", "1,1,20,20", "--point", "5,5"],  # two region flags
        [],  # no region flag
    ],
    ids=["two region flags", "no region flag"],
)
def test_argparse_refuses_other_than_one_region_flag(checkpoint, files, capsys, args):
    with pytest.raises(SystemExit) as raised:
        main(["describe", "--model", checkpoint, "--image", files["scene"], *args])
    assert raised.value.code == 2
    assert "--box" in capsys.readouterr().err


def test_argparse_refuses_an_image_and_a_video(checkpoint, files, capsys):
    with pytest.raises(SystemExit) as raised:
        main(
            ["describe", "--model", checkpoint, "--image", files["scene"], "--video", files["video"], "--point", "5,5"]
        )
    assert raised.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
