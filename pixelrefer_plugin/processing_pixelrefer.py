# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""PixelRefer processor: prompts with `<image>` / `<region>` placeholders, images and regions -> model inputs."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .region_geometry import crop_and_resize_image, plan_region_crop, region_grid_mask
from .regions import PixelReferInputError, RegionInputError, load_image, region_to_mask

logger = logging.getLogger(__name__)

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


class PixelReferProcessor(ProcessorMixin):
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
        mask_num (`int`, *optional*, defaults to 32):
            Maximum object tokens per region; must equal the model's `config.mask_num`.
        region_context_patches, region_min_patches, region_max_patches, region_grid_rounding:
            Crop geometry; must equal the model config's fields of the same names.
        region_max_pixels (`int`, *optional*):
            Pixel budget of one region crop (default: the image processor's `size["longest_edge"]`).
        point_size (`int`, *optional*, defaults to 28):
            Side in pixels of the square a `point` region stands for.
    """

    _auto_class = "AutoProcessor"

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template: str | None = None,
        image_token: str = "<image>",
        region_placeholder: str = "<region>",
        region_token: str = "<REGION>",
        mask_num: int = 32,
        region_context_patches: int = 2,
        region_min_patches: int = 32,
        region_max_patches: int = 100,
        region_grid_rounding: str = "separable",
        region_max_pixels: int | None = None,
        point_size: int = 28,
        **kwargs,
    ):
        self.image_token = image_token
        self.region_placeholder = region_placeholder
        self.region_token = region_token
        self.mask_num = mask_num
        self.region_context_patches = region_context_patches
        self.region_min_patches = region_min_patches
        self.region_max_patches = region_max_patches
        self.region_grid_rounding = region_grid_rounding
        self.region_max_pixels = region_max_pixels
        self.point_size = point_size
        if chat_template is None:
            chat_template = DEFAULT_CHAT_TEMPLATE
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        self.region_token_id = tokenizer.convert_tokens_to_ids(region_token)
        for name, token, token_id in (
            ("image_token", image_token, self.image_token_id),
            ("region_token", region_token, self.region_token_id),
        ):
            if token_id is None or token_id == tokenizer.unk_token_id:
                raise ValueError(f"{name} {token!r} is not in the tokenizer's vocabulary; add it as a special token")
        self._placeholder_pattern = re.compile(f"({re.escape(image_token)}|{re.escape(region_placeholder)})")

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
            "region_boxes",
            "region_image_sizes",
        ]

    @property
    def patch_size(self) -> int:
        return self.image_processor.patch_size

    @property
    def crop_pixel_budget(self) -> tuple[int, int]:
        size = self.image_processor.size
        min_pixels = size["shortest_edge"]
        max_pixels = self.region_max_pixels if self.region_max_pixels is not None else size["longest_edge"]
        return min_pixels, max_pixels

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
            text: a prompt or a list of prompts with `<image>` and `<region>` placeholders.
            regions: one list of region dicts per prompt (see `regions.py`); with a single prompt, the
                list of its region dicts.
            return_labels: add `labels`, the input ids on assistant answers (after `<|im_start|>assistant\\n`, up to
                and including `<|im_end|>`) and -100 elsewhere.
            return_tensors, padding, **kwargs: passed to the tokenizer.

        Returns:
            [`BatchFeature`] with `input_ids`, `attention_mask`, and when present `pixel_values`, `image_grid_thw`,
            `image_merge_sizes`, `region_pixel_values`, `region_grid_thw`, `region_grid_mask`, `region_boxes`,
            `region_image_sizes` (and `labels`).
        """
        if videos is not None:
            raise NotImplementedError("video inputs are not supported by this version of PixelReferProcessor")
        texts = self._as_text_list(text)
        per_sample_images = self._per_sample(images, len(texts), "images", is_item=_looks_like_image)
        per_sample_regions = self._per_sample(regions, len(texts), "regions", is_item=lambda x: isinstance(x, Mapping))

        scene_images: list[np.ndarray] = []
        crops: list[np.ndarray] = []
        grid_masks: list[np.ndarray] = []
        boxes: list[tuple[int, int, int, int]] = []
        image_sizes: list[tuple[int, int]] = []
        region_token_counts: list[list[int]] = []
        for sample_index, (sample_images, sample_regions) in enumerate(
            zip(per_sample_images, per_sample_regions, strict=True)
        ):
            loaded = [load_image(image, sample_index, i) for i, image in enumerate(sample_images)]
            scene_images.extend(loaded)
            counts = []
            for region_index, region in enumerate(sample_regions):
                image = self._region_image(region, loaded, sample_index, region_index)
                mask = region_to_mask(region, image.shape[:2], sample_index, region_index, self.point_size)
                plan = plan_region_crop(
                    mask,
                    self.patch_size,
                    self.region_context_patches,
                    self.region_min_patches,
                    self.region_max_patches,
                    *self.crop_pixel_budget,
                )
                grid = region_grid_mask(mask, plan, self.region_grid_rounding)
                crops.append(crop_and_resize_image(image, plan))
                grid_masks.append(grid.reshape(-1))
                boxes.append(plan.box)
                image_sizes.append(plan.image_size)
                counts.append(min(self.mask_num, int(grid.sum())))
            region_token_counts.append(counts)

        data: dict[str, Any] = {}
        image_token_counts: list[int] = []
        if scene_images:
            image_inputs = self.image_processor(
                images=scene_images, merge_size=1, input_data_format="channels_last", return_tensors="pt"
            )
            data.update(image_inputs)
            merges = image_inputs["image_merge_sizes"]
            image_token_counts = (image_inputs["image_grid_thw"].prod(dim=1) // merges**2).tolist()
        if crops:
            crop_inputs = self.image_processor(
                images=crops, do_resize=False, merge_size=1, input_data_format="channels_last", return_tensors="pt"
            )
            data["region_pixel_values"] = crop_inputs["pixel_values"]
            data["region_grid_thw"] = crop_inputs["image_grid_thw"]
            data["region_grid_mask"] = torch.from_numpy(np.concatenate(grid_masks))
            data["region_boxes"] = torch.tensor(boxes, dtype=torch.long)
            data["region_image_sizes"] = torch.tensor(image_sizes, dtype=torch.long)

        expanded = []
        image_offset = 0
        for sample_index, prompt in enumerate(texts):
            num_images = len(per_sample_images[sample_index])
            expanded.append(
                self._expand_placeholders(
                    prompt,
                    image_token_counts[image_offset : image_offset + num_images],
                    region_token_counts[sample_index],
                    sample_index,
                )
            )
            image_offset += num_images

        text_inputs = self.tokenizer(expanded, padding=padding, return_tensors=return_tensors, **kwargs)
        data.update(text_inputs)
        if return_labels:
            data["labels"] = self.assistant_labels(data["input_ids"], data.get("attention_mask"))
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _as_text_list(self, text: Any) -> list[str]:
        if isinstance(text, str):
            return [text]
        if isinstance(text, Sequence) and text and all(isinstance(t, str) for t in text):
            return list(text)
        raise PixelReferInputError("text", f"expected a string or a non-empty list of strings, got {text!r:.80}")

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

    @staticmethod
    def _region_image(
        region: Mapping[str, Any], images: list[np.ndarray], sample_index: int, region_index: int
    ) -> np.ndarray:
        if not isinstance(region, Mapping):
            raise RegionInputError(f"expected a region dict, got {type(region).__name__}", sample_index, region_index)
        image_index = region.get("image", 0)
        if not images:
            raise RegionInputError("the sample has no image for the region to lie on", sample_index, region_index)
        if not isinstance(image_index, int) or not 0 <= image_index < len(images):
            raise RegionInputError(
                f"image index {image_index!r} is out of range; the sample has {len(images)} image(s)",
                sample_index,
                region_index,
            )
        return images[image_index]

    def _expand_placeholders(
        self, prompt: str, image_token_counts: list[int], region_token_counts: list[int], sample_index: int
    ) -> str:
        """Replace each `<image>` by its scene tokens and each `<region>` by `[` + `<REGION>` x n + `]`, in order."""
        num_image_tags = prompt.count(self.image_token)
        num_region_tags = prompt.count(self.region_placeholder)
        if num_image_tags != len(image_token_counts):
            raise PixelReferInputError(
                "text",
                f"the prompt holds {num_image_tags} {self.image_token} placeholder(s) but {len(image_token_counts)} "
                "image(s) were given; expected one placeholder per image",
                sample_index,
            )
        if num_region_tags != len(region_token_counts):
            raise PixelReferInputError(
                "text",
                f"the prompt holds {num_region_tags} {self.region_placeholder} placeholder(s) but "
                f"{len(region_token_counts)} region(s) were given; expected one placeholder per region",
                sample_index,
            )
        images_iter, regions_iter = iter(image_token_counts), iter(region_token_counts)
        parts = []
        for part in self._placeholder_pattern.split(prompt):
            if part == self.image_token:
                parts.append(self.image_token * next(images_iter))
            elif part == self.region_placeholder:
                parts.append("[" + self.region_token * next(regions_iter) + "]")
            else:
                parts.append(part)
        return "".join(parts)

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


def _looks_like_image(value: Any) -> bool:
    from pathlib import Path

    from PIL import Image

    if isinstance(value, (Image.Image, str, Path)):
        return True
    return isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim in (2, 3)


__all__ = ["PixelReferProcessor"]
