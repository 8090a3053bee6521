# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""PixelRefer processor: prompts with `<image>` / `<region>` placeholders, images and regions -> model inputs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .configuration_pixelrefer import LOADING_HOOKS, resolve_pretrained_name
from .errors import PixelReferInputError, RegionInputError
from .image_loading import load_image
from .region_inputs import RegionInputCollector
from .region_masks import region_parts, region_to_mask
from .region_settings import VARIANTS, RegionSettingAttributes, RegionSettings, pop_region_settings
from .video_decoding import VideoClip, compression_mask, load_video

IGNORE_INDEX = -100

# Qwen chat format with no default system prompt. An image item renders as "<image>\n", a video item as "<video>\n",
# a region item as "<region>"; the processor expands those placeholders.
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{- '<image>\\n' -}}"
    "{%- elif item['type'] == 'video' -%}{{- '<video>\\n' -}}"
    "{%- elif item['type'] == 'region' -%}{{- '<region>' -}}"
    "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


# PixelRefer-Lite reads no scene tokens: image and video items render as nothing.
LITE_CHAT_TEMPLATE = DEFAULT_CHAT_TEMPLATE.replace("'<image>\\n'", "''").replace("'<video>\\n'", "''")


class _Sample(NamedTuple):
    """What one sample of a batch contributes: its scene images and videos (none for Lite) and its region texts."""

    scene_images: list[np.ndarray]
    scene_videos: list[VideoClip]
    region_texts: list[str]


class PixelReferProcessor(RegionSettingAttributes, ProcessorMixin):
    r"""
    Turns prompts, images and regions into the inputs of [`PixelReferForConditionalGeneration`].

    Each prompt may hold `<image>` placeholders (one per image of its sample, expanded to the image's scene tokens) and
    `<region>` placeholders (one per region of its sample, in order, expanded to `[` + `<REGION>` x n + `]`, where n is
    the number of object tokens the model will produce for that region: `min(mask_num, cells of its grid mask)`).

    Args:
        image_processor ([`VideoLlama3ImageProcessorPil`] or [`VideoLlama3ImageProcessor`]):
            Resizes, normalises and patchifies images and region crops.
        tokenizer ([`PreTrainedTokenizerBase`]):
            Tokenizer with `<image>` and `<REGION>` as special tokens.
        chat_template (`str`, *optional*):
            Jinja chat template (Qwen format, no default system prompt).
        image_token (`str`, *optional*, defaults to `"<image>"`):
            Image placeholder in the prompt and scene-token string in the vocabulary.
        region_placeholder (`str`, *optional*, defaults to `"<region>"`):
            Region placeholder in the prompt.
        region_token (`str`, *optional*, defaults to `"<REGION>"`):
            Object-token string in the vocabulary.
        variant (`str`, *optional*, defaults to `"full"`):
            `"full"` expands `<image>` / `<video>` to scene tokens; `"lite"` refuses them (object tokens only) and gives
            every region exactly `mask_num` tokens plus its local and global context images.
        region_settings ([`RegionSettings`] or `dict`, *optional*):
            Crop geometry, grid rounding, `mask_num`, `region_max_pixels` (the crop pixel budget, default: the image
            processor's `size["longest_edge"]`), `point_size` and the Lite context sizes; must match the model config's
            `region_settings`. Default: `RegionSettings.for_variant(variant)`. Each setting may also be given, and is
            saved, as a flat keyword of the same name (`region_max_patches=50`), which overrides `region_settings`;
            `processor.mask_num` reads it.
        video_placeholder (`str`, *optional*, defaults to `"<video>"`):
            Video placeholder in the prompt (full variant).
        video_token (`str`, *optional*, defaults to `"<|video_pad|>"`):
            Token that video frame features replace.
        video_fps (`float`, *optional*, defaults to 1.0):
            Frames per second sampled from a video file for the scene (full variant).
        video_max_frames (`int`, *optional*, defaults to 180):
            At most this many frames are sampled; longer videos are sampled uniformly.
        video_max_pixels (`int`, *optional*, defaults to 6422528):
            Pixel budget of a whole video's sampled frames (8192 tokens after the 2 x 2 merge).
        video_merge_size (`int`, *optional*, defaults to 2):
            Spatial merge of video frame features; must equal the model's `video_merge_size`.
        video_compression_threshold (`float`, *optional*, defaults to 0.1):
            Frame-difference threshold of video token compression; `None` keeps every token.
    """

    _auto_class = "AutoProcessor"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """`ProcessorMixin.from_pretrained`. With `pixelrefer_plugin` installed, `pretrained_model_name_or_path` may
        also be a preset name (`"pixelrefer-7b"`) or a released checkpoint (its processor gets the released
        settings)."""
        name = resolve_pretrained_name(pretrained_model_name_or_path, **kwargs)
        released = LOADING_HOOKS.released_processor
        processor = released(name, **kwargs) if released is not None else None
        return processor if processor is not None else super().from_pretrained(name, **kwargs)

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template: str | None = None,
        image_token: str = "<image>",
        region_placeholder: str = "<region>",
        region_token: str = "<REGION>",
        variant: str = "full",
        region_settings: RegionSettings | Mapping[str, Any] | None = None,
        video_placeholder: str = "<video>",
        video_token: str = "<|video_pad|>",
        video_fps: float = 1.0,
        video_max_frames: int = 180,
        video_max_pixels: int = 6422528,
        video_merge_size: int = 2,
        video_compression_threshold: float | None = 0.1,
        **kwargs,
    ):
        self.image_token = image_token
        self.region_placeholder = region_placeholder
        self.region_token = region_token
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.region_settings = RegionSettings.from_arguments(region_settings, variant, kwargs)
        self.video_placeholder = video_placeholder
        self.video_token = video_token
        self.video_fps = video_fps
        self.video_max_frames = video_max_frames
        self.video_max_pixels = video_max_pixels
        self.video_merge_size = video_merge_size
        self.video_compression_threshold = video_compression_threshold
        if chat_template is None:
            chat_template = LITE_CHAT_TEMPLATE if variant == "lite" else DEFAULT_CHAT_TEMPLATE
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        self.region_token_id = tokenizer.convert_tokens_to_ids(region_token)
        for name, token, token_id in (
            ("image_token", image_token, self.image_token_id),
            ("region_token", region_token, self.region_token_id),
        ):
            if token_id is None or token_id == tokenizer.unk_token_id:
                raise ValueError(f"{name} {token!r} is not in the tokenizer's vocabulary; add it as a special token")
        self.video_token_id = tokenizer.convert_tokens_to_ids(video_token) if variant == "full" else None
        if variant == "full" and (self.video_token_id is None or self.video_token_id == tokenizer.unk_token_id):
            raise ValueError(f"video_token {video_token!r} is not in the tokenizer's vocabulary")
        placeholders = (image_token, video_placeholder, region_placeholder)
        self._placeholder_pattern = re.compile("(" + "|".join(re.escape(p) for p in placeholders) + ")")

    @property
    def model_input_names(self) -> list[str]:
        return [
            "input_ids",
            "attention_mask",
            "pixel_values",
            "image_grid_thw",
            "image_merge_sizes",
            "region_pixel_values",
            "region_grid_thw",
            "region_grid_mask",
            "region_mask_sizes",
            "region_boxes",
            "region_image_sizes",
            "pixel_values_videos",
            "video_grid_thw",
            "video_merge_sizes",
            "video_compression_mask",
            "region_local_pixel_values",
            "region_local_grid_thw",
            "frame_pixel_values",
            "frame_grid_thw",
            "region_frame_index",
        ]

    @property
    def patch_size(self) -> int:
        return self.image_processor.patch_size

    @property
    def crop_pixel_budget(self) -> tuple[int, int]:
        """`(min_pixels, max_pixels)` of one region crop."""
        size = self.image_processor.size
        max_pixels = self.region_settings.region_max_pixels
        return size["shortest_edge"], max_pixels if max_pixels is not None else size["longest_edge"]

    def to_dict(self) -> dict[str, Any]:
        """Serialises like `ProcessorMixin.to_dict`, with the region settings as flat keys (`mask_num`, ...)."""
        output = super().to_dict()
        output.update(output.pop("region_settings").to_dict())
        return output

    @classmethod
    def from_args_and_dict(cls, args, processor_dict: dict[str, Any], **kwargs):
        """Reads the flat region-setting keys of `processor_config.json`, and of keyword overrides, into
        `region_settings`."""
        processor_dict = dict(processor_dict)
        saved = pop_region_settings(processor_dict)
        given = kwargs.pop("region_settings", None)
        if given is not None:
            saved = given.to_dict() if isinstance(given, RegionSettings) else dict(given)
        processor_dict["region_settings"] = {**saved, **pop_region_settings(kwargs)}
        return super().from_args_and_dict(args, processor_dict, **kwargs)

    def __call__(
        self,
        images: Any = None,
        text: str | Sequence[str] | None = None,
        regions: Sequence[Any] | None = None,
        videos: Any = None,
        return_labels: bool = False,
        return_tensors: str | None = "pt",
        padding: bool | str = True,
        **kwargs,
    ) -> BatchFeature:
        """Build model inputs for a batch.

        Args:
            images: one entry per prompt (an image, a list of images, or None); with a single prompt, an image or a
                list of images. An image is a PIL image, a path, an `(H, W, 3)` array or tensor.
            text: a prompt or a list of prompts with `<image>`, `<video>` and `<region>` placeholders.
            regions: one list of region dicts per prompt (see `region_masks.py`); with a single prompt, the list of its
                region dicts.
            videos: one entry per prompt (a video, a list of videos, or None). A video is a file path or a dict
                `{"frames": [...], "timestamps": [...], "frame_indices": [...] (optional)}`.
            return_labels: add `labels`, the input ids on assistant answers (after `<|im_start|>assistant\\n`, up to
                and including `<|im_end|>`) and -100 elsewhere.
            return_tensors, padding, **kwargs: passed to the tokenizer.

        Returns:
            [`BatchFeature`] with `input_ids`, `attention_mask` and, when present, scene inputs (`pixel_values`,
            `image_grid_thw`, `image_merge_sizes`, `pixel_values_videos`, `video_grid_thw`, `video_merge_sizes`,
            `video_compression_mask`), region inputs (`region_pixel_values`, `region_grid_thw`, `region_grid_mask`,
            `region_mask_sizes` where a crop was refitted into the pixel budget, `region_boxes`, `region_image_sizes`; Lite: `region_local_pixel_values`, `region_local_grid_thw`,
            `frame_pixel_values`, `frame_grid_thw`, `region_frame_index`) and `labels`.
        """
        texts = self._as_text_list(text)
        per_sample = zip(
            self._per_sample(images, len(texts), "images", is_item=_looks_like_image),
            self._per_sample(videos, len(texts), "videos", is_item=_looks_like_video),
            self._per_sample(regions, len(texts), "regions", is_item=lambda x: isinstance(x, Mapping)),
            strict=True,
        )
        min_pixels, max_pixels = self.crop_pixel_budget
        collector = RegionInputCollector(
            self.region_settings, self.patch_size, min_pixels, max_pixels, lite=self.variant == "lite"
        )
        samples = [self._collect_sample(index, *sample, collector) for index, sample in enumerate(per_sample)]

        data, image_texts, video_texts = self._scene_inputs(samples)
        data.update(collector.features(self.image_processor))
        expanded = self._expand_all(texts, samples, image_texts, video_texts)
        data.update(self.tokenizer(expanded, padding=padding, return_tensors=return_tensors, **kwargs))
        if return_labels:
            data["labels"] = self.assistant_labels(data["input_ids"], data.get("attention_mask"))
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _collect_sample(
        self,
        sample_index: int,
        images: list[Any],
        videos: list[Any],
        regions: list[Any],
        collector: RegionInputCollector,
    ) -> _Sample:
        """Load one sample's images and videos and add each of its regions to `collector`."""
        loaded = [load_image(image, sample_index, i) for i, image in enumerate(images)]
        located = [region_parts(region, sample_index, i) for i, region in enumerate(regions)]
        clips = self._load_videos(videos, located, sample_index)
        crops_in_prompt = sum(len(parts) for _, _, parts in located)
        region_texts = []
        for region_index, (source, index, parts) in enumerate(located):
            frames = self._region_frames(source, index, parts, loaded, clips, sample_index, region_index)
            counts = []
            for (frame_number, part), frame in zip(parts, frames, strict=True):
                mask = region_to_mask(
                    part, frame.shape[:2], sample_index, region_index, self.region_settings.point_size
                )
                frame_key = (sample_index, source, index, frame_number)
                counts.append(collector.add(mask, frame, frame_key, crops_in_prompt))
            timestamps = None
            if self.variant == "lite" and source == "video":
                timestamps = [clips[index].region_timestamps[number] for number, _ in parts]
            region_texts.append(self._region_text(counts, timestamps))
        if self.variant == "lite":  # Lite reads no scene tokens: its images and videos only carry regions
            return _Sample([], [], region_texts)
        return _Sample(loaded, clips, region_texts)

    def _region_text(self, counts: list[int], timestamps: list[float] | None) -> str:
        """`[<REGION>...]` of one region; for a Lite video region one `Time t:<REGION>...` piece per masked frame."""
        if timestamps is None:
            return "[" + self.region_token * counts[0] + "]"
        pieces = [f"Time {round(t, 1)}:" + self.region_token * n for t, n in zip(timestamps, counts, strict=True)]
        return "[" + ",".join(pieces) + "]"

    def _scene_inputs(self, samples: list[_Sample]) -> tuple[dict[str, Any], list[str], list[str]]:
        """Scene inputs of the batch's images and videos, and each image's / video's placeholder text, in order."""
        data: dict[str, Any] = {}
        image_texts: list[str] = []
        scene_images = [image for sample in samples for image in sample.scene_images]
        if scene_images:
            image_inputs = self.image_processor(
                images=scene_images, merge_size=1, input_data_format="channels_last", return_tensors="pt"
            )
            data.update(image_inputs)
            counts = image_inputs["image_grid_thw"].prod(dim=1) // image_inputs["image_merge_sizes"] ** 2
            image_texts = [self.image_token * int(n) for n in counts]
        video_texts: list[str] = []
        scene_videos = [clip for sample in samples for clip in sample.scene_videos]
        if scene_videos:
            video_inputs, video_texts = self._video_scene_inputs(scene_videos)
            data.update(video_inputs)
        return data, image_texts, video_texts

    def _expand_all(
        self, texts: list[str], samples: list[_Sample], image_texts: list[str], video_texts: list[str]
    ) -> list[str]:
        """Every prompt with its placeholders replaced by the token strings of its own images, videos and regions."""
        image_texts_left, video_texts_left = iter(image_texts), iter(video_texts)
        return [
            self._expand_placeholders(
                prompt,
                [next(image_texts_left) for _ in sample.scene_images],
                [next(video_texts_left) for _ in sample.scene_videos],
                sample.region_texts,
                sample_index,
            )
            for sample_index, (prompt, sample) in enumerate(zip(texts, samples, strict=True))
        ]

    def _load_videos(
        self, videos: list[Any], located: list[tuple[str, int, list]], sample_index: int
    ) -> list[VideoClip]:
        """Decode the sample's videos: sampled scene frames (full variant) and every frame a region lies on."""
        wanted: dict[int, set[int]] = {index: set() for index in range(len(videos))}
        for region_index, (source, index, parts) in enumerate(located):
            if source != "video":
                continue
            if index not in wanted:
                raise RegionInputError(
                    f"video index {index} is out of range; the sample has {len(videos)} video(s)",
                    sample_index,
                    region_index,
                )
            if self.variant == "full" and len(parts) > 1:
                raise RegionInputError(
                    "the full variant takes one masked frame per region ('frame'); multi-frame regions ('frames') "
                    "are for PixelRefer-Lite",
                    sample_index,
                    region_index,
                )
            wanted[index].update(number for number, _ in parts)
        return [
            load_video(
                video,
                sorted(wanted[index]),
                sample_scene=self.variant == "full",
                fps=self.video_fps,
                max_frames=self.video_max_frames,
                sample_index=sample_index,
                video_index=index,
            )
            for index, video in enumerate(videos)
        ]

    @staticmethod
    def _region_frames(
        source: str,
        index: int,
        parts: list[tuple[int | None, Mapping[str, Any]]],
        images: list[np.ndarray],
        clips: list[VideoClip],
        sample_index: int,
        region_index: int,
    ) -> list[np.ndarray]:
        """The full-resolution frame each part of a region lies on."""
        if source == "video":
            return [clips[index].region_frames[number] for number, _ in parts]
        if not images:
            raise RegionInputError("the sample has no image for the region to lie on", sample_index, region_index)
        if index >= len(images):
            raise RegionInputError(
                f"image index {index} is out of range; the sample has {len(images)} image(s)",
                sample_index,
                region_index,
            )
        return [images[index]]

    def _video_scene_inputs(self, clips: list[VideoClip]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Patches, grids and compression masks of the sampled frames, and each video's placeholder text."""
        pixel_values, grids, keep_masks, texts = [], [], [], []
        min_pixels = self.image_processor.size["shortest_edge"]
        for clip in clips:
            num_frames = len(clip.frames)
            size = {"shortest_edge": min_pixels, "longest_edge": max(min_pixels, self.video_max_pixels // num_frames)}
            frames = self.image_processor(
                images=list(clip.frames),
                size=size,
                merge_size=self.video_merge_size,
                input_data_format="channels_last",
                return_tensors="pt",
            )
            _, height, width = frames["image_grid_thw"][0].tolist()
            grid = (num_frames, height, width)
            if self.video_compression_threshold is None:
                keep = torch.ones(num_frames * height * width // self.video_merge_size**2, dtype=torch.bool)
            else:
                keep = compression_mask(
                    frames["pixel_values"], grid, self.video_merge_size, self.video_compression_threshold
                )
            kept_per_frame = keep.view(num_frames, -1).sum(dim=1).tolist()
            texts.append(
                ",".join(
                    f"Time {t:.1f}s:" + self.video_token * n
                    for t, n in zip(clip.timestamps, kept_per_frame, strict=True)
                )
            )
            pixel_values.append(frames["pixel_values"])
            grids.append(grid)
            keep_masks.append(keep)
        data = {
            "pixel_values_videos": torch.cat(pixel_values),
            "video_grid_thw": torch.tensor(grids, dtype=torch.long),
            "video_merge_sizes": torch.full((len(clips),), self.video_merge_size, dtype=torch.long),
            "video_compression_mask": torch.cat(keep_masks),
        }
        return data, texts

    def _as_text_list(self, text: Any) -> list[str]:
        """`text` as a list of non-empty prompts."""
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, Sequence) or not texts or not all(isinstance(t, str) for t in texts):
            raise PixelReferInputError("text", f"expected a string or a non-empty list of strings, got {text!r:.80}")
        for sample_index, prompt in enumerate(texts):
            if not prompt.strip():
                raise PixelReferInputError(
                    "text", f"the prompt is empty ({prompt!r}); expected a question or instruction", sample_index
                )
        return list(texts)

    def _check_feature_tokens(self, prompt: str, sample_index: int) -> None:
        """Refuse vocabulary tokens that the model replaces by features (`<REGION>`, `<|video_pad|>`) typed into a
        prompt: only the processor places them, as the expansion of a `<region>` / `<video>` placeholder."""
        for name, token, placeholder in (
            ("region_token", self.region_token, self.region_placeholder),
            ("video_token", self.video_token, self.video_placeholder),
        ):
            if token != placeholder and token in prompt:
                raise PixelReferInputError(
                    "text",
                    f"the prompt holds {prompt.count(token)} {token} token(s) ({name}); the processor places them "
                    f"itself: write the {placeholder} placeholder instead",
                    sample_index,
                )

    @staticmethod
    def _per_sample(values: Any, num_samples: int, argument: str, is_item) -> list[list[Any]]:
        """Normalise `images` / `regions` to one list per sample.

        Accepted: None; one entry per prompt (an item, a list of items, or None); and with a single prompt, a bare item
        or a flat list of items.
        """
        if values is None:
            return [[] for _ in range(num_samples)]
        if is_item(values):
            values = [values]
        if not isinstance(values, Sequence) or isinstance(values, str):
            raise PixelReferInputError(
                argument, f"expected a list with one entry per prompt, got {type(values).__name__}"
            )
        if num_samples == 1 and all(is_item(v) for v in values):
            values = [list(values)]
        if len(values) != num_samples:
            raise PixelReferInputError(
                argument, f"got {len(values)} entries for {num_samples} prompts; expected one entry per prompt"
            )
        per_sample = []
        for sample_index, entry in enumerate(values):
            if entry is None:
                per_sample.append([])
            elif is_item(entry):
                per_sample.append([entry])
            elif isinstance(entry, Sequence) and not isinstance(entry, str):
                per_sample.append(list(entry))
            else:
                raise PixelReferInputError(
                    argument, f"expected an item, a list of items or None, got {type(entry).__name__}", sample_index
                )
        return per_sample

    def _expand_placeholders(
        self, prompt: str, image_texts: list[str], video_texts: list[str], region_texts: list[str], sample_index: int
    ) -> str:
        """Replace `<image>`, `<video>` and `<region>` placeholders, in order, by their token strings."""
        self._check_feature_tokens(prompt, sample_index)
        if self.variant == "lite":
            for placeholder in (self.image_token, self.video_placeholder):
                if placeholder in prompt:
                    raise PixelReferInputError(
                        "text",
                        f"PixelRefer-Lite reads no scene tokens: remove the {placeholder} placeholder(s) from the "
                        "prompt (its regions still see their images and frames)",
                        sample_index,
                    )
        for placeholder, given, what in (
            (self.image_token, image_texts, "image"),
            (self.video_placeholder, video_texts, "video"),
            (self.region_placeholder, region_texts, "region"),
        ):
            if self.variant == "lite" and what != "region":
                continue
            found = prompt.count(placeholder)
            if found != len(given):
                raise PixelReferInputError(
                    "text",
                    f"the prompt holds {found} {placeholder} placeholder(s) but {len(given)} {what}(s) were given; "
                    f"expected one placeholder per {what}",
                    sample_index,
                )
        replacements = {
            self.image_token: iter(image_texts),
            self.video_placeholder: iter(video_texts),
            self.region_placeholder: iter(region_texts),
        }
        parts = self._placeholder_pattern.split(prompt)
        return "".join(next(replacements[part]) if part in replacements else part for part in parts)

    def assistant_labels(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Labels that supervise only assistant answers: the tokens after `<|im_start|>assistant\\n` up to and including
        the next `<|im_end|>`; everything else (prompt, images, regions, padding) is -100."""
        start = self.tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
        end_id = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        for row, ids in enumerate(input_ids.tolist()):
            position = 0
            while True:
                found = _find(ids, start, position)
                if found < 0:
                    break
                begin = found + len(start)
                end = ids.index(end_id, begin) + 1 if end_id in ids[begin:] else len(ids)
                labels[row, begin:end] = input_ids[row, begin:end]
                position = end
        if attention_mask is not None:
            labels[attention_mask == 0] = IGNORE_INDEX
        return labels


def _find(sequence: list[int], pattern: list[int], start: int) -> int:
    """Index of the first occurrence of `pattern` in `sequence` at or after `start`, or -1."""
    first = pattern[0]
    for index in range(start, len(sequence) - len(pattern) + 1):
        if sequence[index] == first and sequence[index : index + len(pattern)] == pattern:
            return index
    return -1


def _looks_like_video(value: Any) -> bool:
    from pathlib import Path

    return isinstance(value, (str, Path)) or (isinstance(value, Mapping) and "frames" in value)


def _looks_like_image(value: Any) -> bool:
    from pathlib import Path

    from PIL import Image

    if isinstance(value, (Image.Image, str, Path)):
        return True
    return isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim in (2, 3)


__all__ = ["PixelReferProcessor"]
