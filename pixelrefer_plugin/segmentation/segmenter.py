# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`RegionSegmenter`: clicks and boxes -> object masks (SAM 2), and one region -> a mask on every frame of a video.

```python no-run
from pixelrefer_plugin.segmentation import RegionSegmenter

segmenter = RegionSegmenter.from_pretrained("sam2.1-hiera-tiny")
regions = segmenter.to_masks([[{"point": [120, 80]}, {"box": [10, 20, 200, 240]}]], images=[["cat.jpg"]])
track = segmenter.propagate("clip.mp4", {"point": [200, 150], "frame": 12}, frames=[0, 6, 12, 18, 24])
```

The segmenter is a model of its own, separate from the PixelRefer processor (which never runs a model): it rewrites
region dicts, and the processor reads the result like any other masks.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import PixelReferInputError, RegionInputError
from ..image_loading import load_image
from ..region_masks import TRACK_KEY, region_parts, region_to_mask
from ..runtime import resolve_device
from ..video_decoding import load_video
from .checkpoints import resolve_segmenter
from .clicks import NEGATIVE_KEY, PROMPT_KINDS, Clicks, describe_prompt, is_prompt, parse_clicks
from .preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    mask_prompt,
    preprocess_images,
    scale_points,
    upsample_mask_logits,
)

logger = logging.getLogger(__name__)

SCORE_KEY = "score"
DEFAULT_TRACK_FRAMES = 32
# model_type of a checkpoint -> (image model class, video model class or None), by transformers class name
MODEL_CLASSES = {
    "sam2_video": ("Sam2Model", "Sam2VideoModel"),
    "sam2": ("Sam2Model", None),
}


class EmptySegmentError(RegionInputError):
    """The segmenter found no object at a region's prompt: its best mask covers no pixel."""


class RegionSegmenter:
    """A SAM 2 model that turns click / box regions into mask regions, batched, and tracks a region through a video.

    Attributes:
        model: the transformers `Sam2Model` (images and single frames).
        source: the folder or hub id the weights were read from.
        image_size: the model's square input side (1024 for the released checkpoints).
        device, dtype: where and in which precision the model runs.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        source: str | os.PathLike,
        image_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        video_model_class: str | None = None,
    ):
        self.model = model.eval()
        self.source = source
        self.image_size = image_size
        self.mean = tuple(mean)
        self.std = tuple(std)
        self._video_model_class = video_model_class
        self._video_model: torch.nn.Module | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        local_files_only: bool = False,
    ) -> RegionSegmenter:
        """Load a SAM 2 checkpoint: a folder, a hub id, or a preset name (`sam2.1-hiera-tiny` ... `-large`).

        Args:
            name_or_path: folder, hub id or segmenter preset name.
            device: as `runtime.resolve_device`: default the best available; an unavailable one is an error.
            dtype: weights and activations (float32 by default).
            local_files_only: never reach the hub (also `HF_HUB_OFFLINE=1`).

        Raises:
            HubUnavailableError: a preset that is not cached, offline (the message gives the download command).
            PixelReferInputError: (argument `segmenter`) no such folder, or a checkpoint that is not SAM 2.
        """
        import transformers

        source = resolve_segmenter(name_or_path, local_files_only=local_files_only)
        try:
            config = transformers.AutoConfig.from_pretrained(source, local_files_only=local_files_only)
        except OSError as error:
            raise PixelReferInputError(
                "segmenter", f"{str(name_or_path)!r}: cannot read a checkpoint ({error})"
            ) from None
        if config.model_type not in MODEL_CLASSES:
            raise PixelReferInputError(
                "segmenter",
                f"{str(name_or_path)!r} is a {config.model_type!r} checkpoint; expected a SAM 2 checkpoint "
                f"(model_type one of {sorted(MODEL_CLASSES)})",
            )
        device = resolve_device(device)  # the one device policy: auto picks the best, an unavailable one is an error
        image_class, video_class = MODEL_CLASSES[config.model_type]
        image_config = transformers.Sam2Config(
            vision_config=config.vision_config.to_dict(),
            prompt_encoder_config=config.prompt_encoder_config.to_dict(),
            mask_decoder_config=config.mask_decoder_config.to_dict(),
        )
        model = getattr(transformers, image_class).from_pretrained(
            source, config=image_config, dtype=dtype, local_files_only=local_files_only
        )
        image_size = int(config.prompt_encoder_config.image_size)
        mean, std = _normalisation(source, image_size, local_files_only)
        return cls(model.to(device), source, image_size, mean, std, video_class)

    # ----------------------------------------------------------------------------------------------- images

    def to_masks(
        self,
        regions: Sequence[Any],
        images: Sequence[Any] | None = None,
        videos: Sequence[Any] | None = None,
    ) -> list[Any]:
        """Replace every click / box region by the mask SAM 2 finds for it; other regions pass through untouched.

        Arguments follow the processor's layout: one list of regions (and of images, of videos) per sample; a flat
        list of region dicts is one sample. A prompt region (see `clicks.py`) becomes `{"mask": (H, W) bool array,
        "score": predicted IoU}` plus its `image` / `video` / `frame` keys; a part of a multi-frame region
        (`{"frames": {...}}`) likewise. All prompts of the batch are segmented together: each image or frame is
        encoded once, the mask decoder runs once per number of clicks.

        Returns:
            the regions in the same layout, prompt regions replaced by new dicts.

        Raises:
            RegionInputError: a malformed prompt, a click or box outside its image, a missing image / frame;
                `EmptySegmentError` when the best mask for a prompt is empty. Each names the sample and region.
        """
        flat = bool(regions) and all(isinstance(region, Mapping) for region in regions)
        per_sample = [list(regions)] if flat else [list(sample or []) for sample in regions]
        per_sample_images = _per_sample(images, len(per_sample), flat)
        per_sample_videos = _per_sample(videos, len(per_sample), flat)

        pictures: dict[tuple, np.ndarray] = {}
        jobs: list[tuple[int, int, int | None, tuple, Clicks]] = []  # (sample, region, frame, picture key, clicks)
        for sample_index, sample in enumerate(per_sample):
            loaded = self._load_pictures(
                sample, per_sample_images[sample_index], per_sample_videos[sample_index], sample_index
            )
            pictures.update(loaded)
            for region_index, region in enumerate(sample):
                for frame, part, key in _prompt_parts(region, sample_index, region_index):
                    clicks = parse_clicks(part, pictures[key].shape[:2], sample_index, region_index)
                    jobs.append((sample_index, region_index, frame, key, clicks))
        keys = list(dict.fromkeys(key for *_, key, _ in jobs))
        masks, scores = self._segment(
            [pictures[key] for key in keys], [keys.index(key) for *_, key, _ in jobs], [job[-1] for job in jobs]
        )
        results: dict[tuple[int, int, int | None], tuple[np.ndarray, float]] = {}
        for (sample_index, region_index, frame, _, _), mask, score in zip(jobs, masks, scores, strict=True):
            if not mask.any():
                part = _part(per_sample[sample_index][region_index], frame)
                raise EmptySegmentError(
                    f"the segmenter found no object at the {describe_prompt(part)}: its best mask (score "
                    f"{score:.3f}) covers no pixel; click on the object or draw a box around it",
                    sample_index,
                    region_index,
                )
            results[(sample_index, region_index, frame)] = (mask, score)
        out = [
            [_with_masks(region, sample_index, region_index, results) for region_index, region in enumerate(sample)]
            for sample_index, sample in enumerate(per_sample)
        ]
        return out[0] if flat else out

    @torch.no_grad()
    def _segment(
        self, pictures: list[np.ndarray], picture_index: list[int], clicks: list[Clicks]
    ) -> tuple[list[np.ndarray], list[float]]:
        """Best masks `(H, W)` bool and scores of prompts `clicks[i]` on `pictures[picture_index[i]]`.

        The pictures are encoded in one pass; prompts with the same number of clicks share one mask-decoder pass
        (padding prompts to a common length would change the decoder's attention, so batched == one by one).
        """
        if not clicks:
            return [], []
        device = self.device
        pixels = preprocess_images(pictures, self.image_size, self.mean, self.std, device).to(self.dtype)
        embeddings = self.model.get_image_embeddings(pixels)
        masks: list[np.ndarray | None] = [None] * len(clicks)
        scores: list[float] = [0.0] * len(clicks)
        by_length: dict[int, list[int]] = {}
        for index, prompt in enumerate(clicks):
            by_length.setdefault(len(prompt.points), []).append(index)
        for members in by_length.values():
            rows = torch.tensor([picture_index[i] for i in members], device=device)
            points = torch.stack(
                [
                    scale_points(torch.tensor(clicks[i].points), pictures[picture_index[i]].shape[:2], self.image_size)
                    for i in members
                ]
            )
            labels = torch.tensor([clicks[i].labels for i in members], dtype=torch.long)
            output = self.model(
                image_embeddings=[embedding[rows] for embedding in embeddings],
                input_points=points[:, None].to(device, self.dtype),
                input_labels=labels[:, None].to(device),
                multimask_output=True,
            )
            iou = output.iou_scores[:, 0].float()  # (G, 3)
            best = iou.argmax(dim=-1)
            logits = output.pred_masks[:, 0][torch.arange(len(members), device=device), best]  # (G, h, w)
            for row, index in enumerate(members):
                size = pictures[picture_index[index]].shape[:2]
                masks[index] = (upsample_mask_logits(logits[row : row + 1], size)[0] > 0).cpu().numpy()
                scores[index] = float(iou[row, best[row]])
        return masks, scores

    def _load_pictures(
        self, regions: list[Any], images: list[Any], videos: list[Any], sample_index: int
    ) -> dict[tuple, np.ndarray]:
        """The images and video frames the sample's prompt regions lie on, keyed `(sample, "image", i)` /
        `(sample, "video", i, frame)`."""
        wanted_images: set[int] = set()
        wanted_frames: dict[int, set[int]] = {}
        for region_index, region in enumerate(regions):
            for frame, _, key in _prompt_parts(region, sample_index, region_index):
                source, index = key[1], key[2]
                count = len(images) if source == "image" else len(videos)
                if index >= count:
                    raise RegionInputError(
                        f"{source} index {index} is out of range; the sample has {count} {source}(s)",
                        sample_index,
                        region_index,
                    )
                if source == "image":
                    wanted_images.add(index)
                else:
                    wanted_frames.setdefault(index, set()).add(frame)
        pictures = {(sample_index, "image", i): load_image(images[i], sample_index, i) for i in sorted(wanted_images)}
        for index, frames in sorted(wanted_frames.items()):
            clip = load_video(videos[index], sorted(frames), False, 1.0, 1, sample_index, index)
            for frame in frames:
                pictures[(sample_index, "video", index, frame)] = clip.region_frames[frame]
        return pictures

    # ----------------------------------------------------------------------------------------------- videos

    @property
    def video_model(self) -> torch.nn.Module:
        """The checkpoint's `Sam2VideoModel`, loaded on first use."""
        if self._video_model is None:
            if self._video_model_class is None:
                raise PixelReferInputError(
                    "segmenter",
                    f"{str(self.source)!r} is an image-only SAM 2 checkpoint; tracking needs a sam2_video one",
                )
            import transformers

            model_class = getattr(transformers, self._video_model_class)
            model = model_class.from_pretrained(self.source, dtype=self.dtype)
            self._video_model = model.to(self.device).eval()
        return self._video_model

    @torch.no_grad()
    def propagate(
        self,
        video: Any,
        region: Mapping[str, Any],
        frames: Sequence[int] | None = None,
        max_frames: int = DEFAULT_TRACK_FRAMES,
    ) -> dict[str, Any]:
        """Track one region from its frame `t` forward and backward through a video (SAM 2's video propagation).

        Args:
            video: a video file path or `{"frames": ..., "timestamps": [...], "frame_indices": [...]}`, as the
                processor takes it.
            region: a region on one frame (`"frame": t`): a click / box prompt or a mask / RLE / polygon.
            frames: the frame numbers to return masks on, e.g. the frames the model samples (default: every frame
                of a dict of frames, one frame per second of a file). SAM 2 tracks through these frames and `t`,
                in order.
            max_frames: the most frames in the track; more `frames` are thinned uniformly (`t` always stays).

        Returns:
            a multi-frame region for PixelRefer-Lite: `{"frames": {frame: {"mask": (H, W) bool, "score": s}},
            "video": v}`. The full model takes one of its frames: `{"mask": track["frames"][t]["mask"], "frame": t}`.
            Frames where the object is not found (empty mask) are left out and logged.

        Raises:
            RegionInputError: a malformed region or prompt; `EmptySegmentError` when the mask on frame `t` is empty.
        """
        source, video_index, parts = region_parts(region, 0, 0)
        if source != "video" or len(parts) != 1:
            raise RegionInputError("propagate takes a region on one video frame ('frame': t)", 0, 0)
        key_frame, part = parts[0]
        order = self._track_frames(video, key_frame, frames, max_frames)
        clip = load_video(video, order, False, 1.0, 1, 0, video_index)
        pictures = [clip.region_frames[number] for number in order]
        size = pictures[0].shape[:2]
        start = order.index(key_frame)
        outputs = self._propagate_from(self._video_session(pictures), start, part, size)
        track: dict[int, dict[str, Any]] = {}
        for position, output in sorted(outputs.items()):
            mask = (upsample_mask_logits(output.pred_masks[:, 0], size)[0] > 0).cpu().numpy()
            score = float(torch.sigmoid(output.object_score_logits.float()).flatten()[0])
            if mask.any():
                track[order[position]] = {"mask": mask, SCORE_KEY: score}
            elif position == start:
                raise EmptySegmentError(
                    f"the segmenter found no object at the {describe_prompt(part)} on frame {key_frame}: its mask "
                    "covers no pixel",
                    0,
                    0,
                )
            else:
                logger.info("frame %d: the tracked object is not found (empty mask); left out", order[position])
        return {TRACK_KEY: track, "video": video_index}

    def _propagate_from(self, session: Any, start: int, part: Mapping[str, Any], size: tuple[int, int]) -> dict:
        """`Sam2VideoModel` outputs on every frame of `session`, by position: the prompt `part` (clicks, box or mask)
        on frame `start`, then propagated forward and backward from it."""
        session.obj_id_to_idx(1)
        if is_prompt(part):
            clicks = parse_clicks(part, size, 0, 0)
            points = scale_points(torch.tensor(clicks.points), size, self.image_size)[None, None]
            labels = torch.tensor(clicks.labels, dtype=torch.int32)[None, None]
            session.add_point_inputs(0, start, {"point_coords": points, "point_labels": labels})
        else:
            mask = region_to_mask(part, size, 0, 0)
            session.add_mask_inputs(0, start, mask_prompt(mask, self.image_size, self.device))
        session.obj_with_new_inputs = [1]
        model = self.video_model
        outputs = {start: model(inference_session=session, frame_idx=start)}
        for reverse in (False, True):
            for output in model.propagate_in_video_iterator(session, start_frame_idx=start, reverse=reverse):
                outputs.setdefault(output.frame_idx, output)
        return outputs

    def _track_frames(self, video: Any, key_frame: int, frames: Sequence[int] | None, max_frames: int) -> list[int]:
        """The sorted frame numbers to track through: `frames` (default: the video's own) thinned to `max_frames`,
        plus the key frame."""
        if max_frames < 1:
            raise PixelReferInputError("max_frames", f"got {max_frames}; expected at least 1 frame")
        if frames is None:
            frames = _default_frames(video)
        wanted = sorted({int(number) for number in frames} - {key_frame})
        if len(wanted) + 1 > max_frames:
            keep = np.linspace(0, len(wanted) - 1, max_frames - 1).round().astype(int) if max_frames > 1 else []
            wanted = [wanted[i] for i in sorted(set(keep))]
        return sorted({*wanted, key_frame})

    def _video_session(self, pictures: list[np.ndarray]):
        """A `Sam2VideoInferenceSession` over preprocessed frames (what `Sam2VideoProcessor.init_video_session` makes)."""
        from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

        height, width = pictures[0].shape[:2]
        pixels = preprocess_images(pictures, self.image_size, self.mean, self.std, self.device)
        return Sam2VideoInferenceSession(
            video=pixels,
            video_height=height,
            video_width=width,
            inference_device=self.device,
            inference_state_device=self.device,
            video_storage_device=self.device,
            dtype=self.dtype,
        )


def _normalisation(source: str | os.PathLike, image_size: int, local_files_only: bool) -> tuple[list, list]:
    """Mean and std of the checkpoint's `preprocessor_config.json` (ImageNet's when it has none); its size must be
    the model's input size."""
    from transformers.utils import cached_file

    path = cached_file(
        source,
        "preprocessor_config.json",
        local_files_only=local_files_only,
        _raise_exceptions_for_missing_entries=False,
    )
    if path is None:
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    config = json.loads(Path(path).read_text())
    size = config.get("size", {})
    if size and (size.get("height"), size.get("width")) != (image_size, image_size):
        raise PixelReferInputError(
            "segmenter", f"{str(source)!r}: its processor resizes to {size}, the model reads {image_size}x{image_size}"
        )
    return config.get("image_mean", list(IMAGENET_MEAN)), config.get("image_std", list(IMAGENET_STD))


def _default_frames(video: Any) -> list[int]:
    """Every frame of a dict of decoded frames; one frame per second of a file."""
    if isinstance(video, Mapping):
        return [int(i) for i in video.get("frame_indices", range(len(video["frames"])))]
    from ..video_decoding import probe_video, sample_frame_indices

    fps, total = probe_video(str(video))
    return sample_frame_indices(total, fps, 1.0, 10**9)


def _per_sample(values: Sequence[Any] | None, num_samples: int, flat: bool) -> list[list[Any]]:
    """One list of images / videos per sample (a single sample's may be given flat, or as one item)."""
    if values is None:
        return [[] for _ in range(num_samples)]
    if flat:
        single = isinstance(values, (str, Path, Mapping)) or not isinstance(values, Sequence)
        return [[values] if single else list(values)]
    if len(values) != num_samples:
        raise PixelReferInputError("images", f"got {len(values)} entries for {num_samples} samples; expected one each")
    return [[] if entry is None else list(entry) if isinstance(entry, (list, tuple)) else [entry] for entry in values]


def _prompt_parts(region: Any, sample_index: int, region_index: int) -> list[tuple[int | None, Mapping, tuple]]:
    """`(frame, prompt part, picture key)` of each click / box part of a region (none for masks)."""
    if not isinstance(region, Mapping):
        return []
    if TRACK_KEY in region:
        video_index = region.get("video", 0)
        track = region[TRACK_KEY]
        if not isinstance(track, Mapping):
            return []
        return [
            (int(frame), part, (sample_index, "video", video_index, int(frame)))
            for frame, part in track.items()
            if is_prompt(part)
        ]
    if not is_prompt(region):
        return []
    unknown = sorted(set(region) - {*PROMPT_KINDS, NEGATIVE_KEY, "box_format", "image", "video", "frame"})
    if unknown:
        raise RegionInputError(
            f"unknown key(s) {unknown} in a segmenter prompt; it takes one of {PROMPT_KINDS}, optionally "
            f"{NEGATIVE_KEY!r}, 'box_format', 'image' or 'video' + 'frame'",
            sample_index,
            region_index,
        )
    if "frame" in region:
        return [(int(region["frame"]), region, (sample_index, "video", region.get("video", 0), int(region["frame"])))]
    return [(None, region, (sample_index, "image", region.get("image", 0)))]


def _part(region: Mapping[str, Any], frame: int | None) -> Mapping[str, Any]:
    if TRACK_KEY in region and frame is not None:
        return region[TRACK_KEY][frame] if frame in region[TRACK_KEY] else region[TRACK_KEY][str(frame)]
    return region


def _with_masks(
    region: Any, sample_index: int, region_index: int, results: dict[tuple[int, int, int | None], tuple]
) -> Any:
    """The region with each prompt (part) replaced by its mask and score; other regions as they are."""
    if not isinstance(region, Mapping):
        return region
    if TRACK_KEY in region:
        track = {}
        for frame, part in region[TRACK_KEY].items():
            found = results.get((sample_index, region_index, int(frame)))
            track[frame] = {"mask": found[0], SCORE_KEY: found[1]} if found and is_prompt(part) else part
        return {**region, TRACK_KEY: track}
    found = results.get((sample_index, region_index, region.get("frame")))
    if found is None or not is_prompt(region):
        return region
    kept = {key: value for key, value in region.items() if key in ("image", "video", "frame")}
    return {"mask": found[0], SCORE_KEY: found[1], **kept}


__all__ = ["DEFAULT_TRACK_FRAMES", "SCORE_KEY", "EmptySegmentError", "RegionSegmenter"]
