# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer describe --model DIR --image FILE --box x0,y0,x1,y1`: ask about one region, streaming the answer."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .arguments import add_device_arguments
from .errors import FlagError

if TYPE_CHECKING:
    from ..errors import PixelReferInputError

logger = logging.getLogger(__name__)

REGION_FLAGS = {"mask": "--mask", "box": "--box", "point": "--point", "rle": "--rle"}
# which flag a library / processor error is about, by the error's `argument`
ARGUMENT_FLAGS = {
    "model": "--model",
    "device": "--device",
    "dtype": "--dtype",
    "question": "--question",
    "text": "--question",
    "images": "--image",
    "videos": "--video",
    "segmenter": "--segmenter",
}


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "describe",
        help="ask a checkpoint about one region of an image or video frame (streams the answer)",
        description="Ask a PixelRefer checkpoint about one region, given by a mask, box, point or COCO RLE, of an "
        "image or of a video frame. The answer is generated greedily and streamed to stdout token by token.",
    )
    parser.add_argument(
        "--model", required=True, metavar="DIR", help="checkpoint folder (pixelrefer build / convert / merge)"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", metavar="FILE", help="image file the region lies on")
    source.add_argument("--video", metavar="FILE", help="video file; --frame says on which frame the region lies")
    parser.add_argument(
        "--frame", type=int, metavar="N", help="with --video: decoded frame index of the region (0 = first frame)"
    )
    region = parser.add_mutually_exclusive_group(required=True)
    region.add_argument("--mask", metavar="FILE", help="mask image (PNG/JPEG, nonzero = inside) or .npy array")
    region.add_argument("--box", metavar="x0,y0,x1,y1", help="box corners in pixels")
    region.add_argument(
        "--point",
        action="append",
        metavar="x,y",
        help="point in pixels: without --segmenter the square of 28 pixels around it; with --segmenter a click on "
        "the object (repeat for several clicks)",
    )
    region.add_argument(
        "--rle", metavar="JSON", help='COCO RLE {"size": [H, W], "counts": ...}: JSON text or a .json file'
    )
    parser.add_argument(
        "--segmenter",
        metavar="DIR_OR_ID",
        help="SAM 2 checkpoint (folder, hub id or sam2.1-hiera-tiny ... -large): --point / --box become the mask of "
        "the object they click or frame (docs/segmentation.md)",
    )
    parser.add_argument(
        "--negative-point",
        action="append",
        metavar="x,y",
        help="with --segmenter: a click on what is not the object (repeatable)",
    )
    parser.add_argument(
        "--question",
        metavar="TEXT",
        help="question with exactly one <region> (default: the published region description prompt)",
    )
    parser.add_argument("--save-overlay", metavar="PNG", help="write the image (or frame) with the region outlined")
    parser.add_argument("--max-new-tokens", type=int, default=128, metavar="N", help="most tokens to generate (128)")
    add_device_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from transformers import TextStreamer

    from ..describe import (
        check_question,
        default_question,
        describe_inputs,
        generate_answer,
        load_model,
        load_processor,
    )
    from ..errors import PixelReferInputError
    from ..runtime import resolve_device, resolve_dtype
    from ..visualize import draw_regions

    kind = next(kind for kind in REGION_FLAGS if getattr(args, kind) is not None)
    flag, value = REGION_FLAGS[kind], getattr(args, kind)
    if kind == "point":
        _check_point_flags(args)
        value = " ".join(args.point)
    try:
        if args.max_new_tokens < 1:
            raise FlagError("--max-new-tokens", str(args.max_new_tokens), "expected a positive number of tokens")
        overlay = _check_overlay_path(args.save_overlay) if args.save_overlay else None
        processor = load_processor(args.model)
        device = resolve_device(args.device)
        dtype = resolve_dtype(args.dtype, device)
        picture, source = _load_source(args, processor)
        if args.segmenter is not None:
            region = _segment(args, kind, picture, device, flag, value)
        else:
            region = _parse_region(kind, args.point[0] if kind == "point" else value)
            _check_region(region, picture.shape[:2], processor.point_size, flag, value)
        on_video = args.video is not None
        question = args.question if args.question is not None else default_question(processor.variant, on_video)
        check_question(question)
        inputs = describe_inputs(processor, source, {**region, "frame": args.frame} if on_video else region, question)
        model = load_model(args.model, device, dtype)
    except PixelReferInputError as error:
        raise _as_flag_error(error, args, flag, value) from None

    streamer = TextStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    answer = generate_answer(model, processor, inputs, args.max_new_tokens, streamer)
    if overlay is not None:
        draw_regions(picture, [region], labels=["1"], point_size=processor.point_size).save(overlay)
        logger.info("wrote the region overlay to %s", overlay)
    if not answer:
        logger.warning("the model gave an empty answer")
    return 0


def _check_point_flags(args: argparse.Namespace) -> None:
    """Several --point, and --negative-point, are clicks for a segmenter."""
    if args.segmenter is None and len(args.point) > 1:
        raise FlagError("--point", " ".join(args.point), "several --point need --segmenter (clicks on one object)")
    if args.segmenter is None and args.negative_point:
        raise FlagError("--negative-point", args.negative_point[0], "--negative-point needs --segmenter")


def _segment(
    args: argparse.Namespace, kind: str, picture: np.ndarray, device: Any, flag: str, value: str
) -> dict[str, Any]:
    """The mask region SAM 2 makes of the --point / --box clicks (`{"mask": ..., "score": ...}`)."""
    from ..errors import RegionInputError
    from ..presets.hub import HubUnavailableError
    from ..segmentation import RegionSegmenter

    if kind not in ("point", "box"):
        raise FlagError("--segmenter", args.segmenter, f"segments --point and --box regions, not --{kind}")
    if kind == "point":
        points = [_numbers("--point", point, ("x", "y")) for point in args.point]
        prompt: dict[str, Any] = {"point": points[0]} if len(points) == 1 else {"points": points}
    else:
        prompt = {"box": _numbers("--box", value, ("x0", "y0", "x1", "y1"))}
    if args.negative_point:
        prompt["negative_points"] = [_numbers("--negative-point", p, ("x", "y")) for p in args.negative_point]
    try:
        segmenter = RegionSegmenter.from_pretrained(args.segmenter, device=device)
    except HubUnavailableError as error:
        raise FlagError("--segmenter", args.segmenter, str(error)) from None
    try:
        (region,) = segmenter.to_masks([prompt], images=[picture])
    except RegionInputError as error:
        raise FlagError(flag, value, error.expected) from None
    logger.info("segmenter %s: mask of %d pixels, score %.3f", args.segmenter, region["mask"].sum(), region["score"])
    return region


def _as_flag_error(
    error: PixelReferInputError, args: argparse.Namespace, region_flag: str, region_value: str
) -> FlagError:
    """A library / processor input error, reworded to name the command-line flag it is about."""
    argument, expected = error.argument, error.expected
    if argument == "regions":
        return FlagError(region_flag, region_value, expected)
    flag = ARGUMENT_FLAGS.get(argument, "--model")
    value = getattr(args, flag[2:], None)
    if value is not None and expected.startswith(f"{str(value)!r} "):
        expected = expected[len(repr(str(value))) + 1 :]  # the flag's value is shown once, before the colon
    if flag == "--question" and value is None:
        value = "(default question)"
    return FlagError(flag, "" if value is None else str(value), expected)


def _check_overlay_path(path: str) -> Path:
    from PIL import Image

    out = Path(path)
    Image.init()
    if out.suffix.lower() not in Image.registered_extensions():
        raise FlagError("--save-overlay", path, "expected an image file name such as overlay.png")
    if not out.parent.is_dir():
        raise FlagError("--save-overlay", path, f"folder {str(out.parent)!r} does not exist")
    return out


def _load_source(args: argparse.Namespace, processor: Any) -> tuple[np.ndarray, Any]:
    """The picture the region lies on (`(H, W, 3)` uint8: the image or the video frame) and the processor's source."""
    from ..errors import ImageInputError
    from ..image_loading import load_image
    from ..video_decoding import VideoInputError, probe_video, read_video_file

    if args.image is not None:
        if args.frame is not None:
            raise FlagError("--frame", str(args.frame), "--frame is for --video; an image has no frames")
        try:
            image = load_image(args.image)
        except ImageInputError as error:
            raise FlagError("--image", args.image, error.expected) from None
        return image, image
    if args.frame is None:
        raise FlagError("--video", args.video, "--video needs --frame N, the decoded frame index the region lies on")
    if args.frame < 0:
        raise FlagError("--frame", str(args.frame), "expected a frame index >= 0 (0 = the first frame)")
    if not Path(args.video).is_file():
        raise FlagError("--video", args.video, "no such file")
    try:
        _, total = probe_video(args.video)
    except Exception as error:  # PyAV / decord raise many types for unreadable files
        raise FlagError("--video", args.video, f"cannot read the video ({error})") from None
    if args.frame >= total:
        raise FlagError(
            "--frame", str(args.frame), f"the video has {total} frame(s); expected an index in 0..{total - 1}"
        )
    try:
        clip = read_video_file(args.video, [args.frame], False, processor.video_fps, processor.video_max_frames)
    except VideoInputError as error:
        raise FlagError("--video", args.video, error.expected) from None
    return clip.region_frames[args.frame], args.video


def _parse_region(kind: str, value: str) -> dict[str, Any]:
    """The region dict of a region flag's value (its geometry is checked against the image afterwards)."""
    if kind == "box":
        return {"box": _numbers("--box", value, ("x0", "y0", "x1", "y1"))}
    if kind == "point":
        return {"point": _numbers("--point", value, ("x", "y"))}
    if kind == "rle":
        return {"rle": _read_rle(value)}
    return {"mask": _read_mask(value)}


def _numbers(flag: str, value: str, names: tuple[str, ...]) -> list[int | float]:
    expected = f"expected {len(names)} comma-separated numbers {','.join(names)} in pixels"
    parts = [part.strip() for part in value.split(",")]
    if len(parts) != len(names) or not all(parts):
        raise FlagError(flag, value, f"{expected}, got {len([p for p in parts if p])}")
    numbers: list[int | float] = []
    for part in parts:
        try:
            number = float(part)
        except ValueError:
            raise FlagError(flag, value, f"{part!r} is not a number; {expected}") from None
        numbers.append(int(number) if number.is_integer() and part.lstrip("+-").isdigit() else number)
    return numbers


def _read_rle(value: str) -> Any:
    text = value.strip()
    if not text.startswith("{"):
        path = Path(value)
        if not path.is_file():
            raise FlagError(
                "--rle", value, 'expected JSON text {"size": [H, W], "counts": ...} or the path of a .json file'
            )
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise FlagError("--rle", value, f"cannot read the file ({error})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise FlagError(
            "--rle", value, f'invalid JSON ({error}); expected {{"size": [H, W], "counts": ...}}'
        ) from None


def _read_mask(value: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    path = Path(value)
    if not path.is_file():
        raise FlagError("--mask", value, "no such file; expected a PNG/JPEG mask image or a .npy array")
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise FlagError("--mask", value, f"cannot read the .npy array ({error})") from None
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("1", "L", "I", "I;16", "F"):
                return np.asarray(image) != 0
            return np.asarray(image.convert("RGB")).any(axis=-1)
    except (OSError, UnidentifiedImageError) as error:
        raise FlagError("--mask", value, f"cannot read the mask image ({error}); expected PNG/JPEG or .npy") from None


def _check_region(region: dict[str, Any], size: tuple[int, int], point_size: int, flag: str, value: str) -> None:
    """The validation of `regions.region_to_mask` (empty box, point outside, mask shape ...), naming the flag."""
    from ..errors import RegionInputError
    from ..region_masks import region_to_mask

    try:
        region_to_mask(region, size, 0, 0, point_size)
    except RegionInputError as error:
        raise FlagError(flag, value, error.expected) from None
