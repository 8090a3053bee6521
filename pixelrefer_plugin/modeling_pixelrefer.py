# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""PixelRefer: transformers' VideoLLaMA3 with object tokens scattered at `<REGION>` positions.

The base (vision encoder, projector, Qwen2 language model, generation, caching, attention kernels) is transformers'
own VideoLLaMA3. PixelRefer adds the object tokenizer: region crops go through the same vision encoder as the scene
images, in one packed pass, and their object tokens replace the `<REGION>` token embeddings.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass

import torch
from torch import nn
from transformers.cache_utils import Cache
from transformers.generation import GenerationMixin
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.auto import AutoModel
from transformers.models.video_llama_3.modeling_video_llama_3 import (
    VideoLlama3CausalLMOutputWithPast,
    VideoLlama3Model,
    VideoLlama3ModelOutputWithPast,
    VideoLlama3PreTrainedModel,
    VideoLlama3Projector,
)
from transformers.utils import can_return_tuple

from .configuration_pixelrefer import PixelReferConfig, resolve_pretrained_name
from .errors import ModelInputError
from .object_infusion import PackedContext, PixelReferObjectInfusion
from .object_tokenizer import PixelReferObjectTokenizer

REGION_INPUT_NAMES = (
    "region_pixel_values",
    "region_grid_thw",
    "region_grid_mask",
    "region_boxes",
    "region_image_sizes",
    "region_local_pixel_values",
    "region_local_grid_thw",
    "frame_pixel_values",
    "frame_grid_thw",
    "region_frame_index",
    "region_mask_sizes",  # optional: only where a crop was refitted into the pixel budget
)
_IMAGE_INPUT_NAMES = ("pixel_values", "image_grid_thw", "image_merge_sizes")
_VIDEO_INPUT_NAMES = ("pixel_values_videos", "video_grid_thw", "video_merge_sizes")
# Every pixel input of `PixelReferModel.forward` and what goes with it, by name.
PIXEL_INPUT_NAMES = _IMAGE_INPUT_NAMES + _VIDEO_INPUT_NAMES + REGION_INPUT_NAMES

# transformers 5.24 renamed the key-value cache argument (and output field) `past_key_values` to `cache`. The models
# take either name and hand the base model the one the installed transformers expects.
CACHE_ARGUMENT = "cache" if "cache" in inspect.signature(VideoLlama3Model.forward).parameters else "past_key_values"


def _take_cache(cache: Cache | None, kwargs: dict) -> Cache | None:
    """The key-value cache, passed as `cache` or (transformers < 5.24) as `past_key_values` in `kwargs`."""
    legacy = kwargs.pop("past_key_values", None)
    if cache is not None and legacy is not None:
        raise ValueError("pass the key-value cache once, as `cache` or as `past_key_values`, not both")
    return cache if cache is not None else legacy


@dataclass
class PixelReferModelOutputWithPast(VideoLlama3ModelOutputWithPast):
    r"""
    object_tokens_per_region (`torch.LongTensor` of shape `(num_regions,)`, *optional*):
        Number of object tokens each region produced.
    """

    object_tokens_per_region: torch.LongTensor | None = None


@dataclass
class PixelReferCausalLMOutputWithPast(VideoLlama3CausalLMOutputWithPast):
    r"""
    object_tokens_per_region (`torch.LongTensor` of shape `(num_regions,)`, *optional*):
        Number of object tokens each region produced.
    """

    object_tokens_per_region: torch.LongTensor | None = None


# The fields of the LM output that come from the base model's output (all but the loss and the logits).
_CARRIED_OUTPUT_FIELDS = {field.name for field in dataclasses.fields(PixelReferCausalLMOutputWithPast)} - {
    "loss",
    "logits",
}


class PixelReferPreTrainedModel(VideoLlama3PreTrainedModel):
    config_class = PixelReferConfig
    config: PixelReferConfig
    _no_split_modules = ["VideoLlama3VisionEncoderLayer", "Qwen2DecoderLayer"]
    # Released Lite checkpoints carry a `mask_embedding` that the public code defines but never calls.
    _keys_to_ignore_on_load_unexpected = [r"^model\.region_encoder\.mask_embedding\."]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`. With `pixelrefer_plugin` installed, `pretrained_model_name_or_path` may
        also be a preset name (`"pixelrefer-7b"`: a folder of that name, else its hub repository) or a released
        checkpoint, loaded as it is."""
        name = resolve_pretrained_name(pretrained_model_name_or_path, **kwargs)
        return super().from_pretrained(name, *model_args, **kwargs)


class PixelReferModel(PixelReferPreTrainedModel, VideoLlama3Model):
    """VideoLLaMA3 backbone plus the object tokenizer (and, for Lite, Object-Centric Infusion); no LM head."""

    config_class = PixelReferConfig
    _auto_class = "AutoModel"

    def __init__(self, config: PixelReferConfig):
        PixelReferPreTrainedModel.__init__(self, config)
        self.vision_model = AutoModel.from_config(config.vision_config)
        self.projector = VideoLlama3Projector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.object_tokenizer = PixelReferObjectTokenizer(config)
        self.object_infusion = PixelReferObjectInfusion(config) if config.variant == "lite" else None
        self.post_init()

    def encode_packed(
        self, groups: list[tuple[torch.Tensor, torch.LongTensor, torch.LongTensor]]
    ) -> list[torch.Tensor]:
        """Run several groups of images through the vision encoder in one packed pass.

        Args:
            groups: `(pixel_values (sum(t*h*w), P), grid_thw (n, 3), merge_sizes (n,))` per group (scene images,
                video frames, region crops, ...).

        Returns:
            per group, its vision features `(sum(t*h*w / merge²), C)` (not projected).
        """
        features = self.vision_model(
            pixel_values=torch.cat([pixels.to(self.vision_model.dtype) for pixels, _, _ in groups]),
            grid_thw=torch.cat([grid for _, grid, _ in groups]),
            merge_sizes=torch.cat([merge for _, _, merge in groups]),
            return_dict=True,
        ).last_hidden_state
        sizes = [int((grid.prod(dim=1) // merge**2).sum()) for _, grid, merge in groups]
        return list(features.split(sizes))

    def object_tokens(
        self,
        crop_features: torch.Tensor,
        region_grid_thw: torch.LongTensor,
        region_grid_mask: torch.BoolTensor,
        region_boxes: torch.LongTensor,
        region_image_sizes: torch.LongTensor,
        region_mask_sizes: torch.LongTensor | None = None,
        local_features: torch.Tensor | None = None,
        local_grid_thw: torch.LongTensor | None = None,
        frame_features: torch.Tensor | None = None,
        frame_grid_thw: torch.LongTensor | None = None,
        region_frame_index: torch.LongTensor | None = None,
    ) -> tuple[torch.Tensor, torch.LongTensor]:
        """Object tokens `(T, D)` of all regions (Lite: `mask_num` per region, context-infused) and tokens per region."""
        grid_sizes = region_grid_thw[:, 1:]
        region_inputs = (
            crop_features,
            grid_sizes,
            region_grid_mask,
            region_boxes,
            region_image_sizes,
            region_mask_sizes,
        )
        if self.object_infusion is None:
            return self.object_tokenizer(*region_inputs)
        if local_features is None or frame_features is None or region_frame_index is None:
            raise ValueError(
                "PixelRefer-Lite needs region_local_pixel_values, frame_pixel_values and region_frame_index; build the "
                "inputs with the Lite PixelReferProcessor"
            )
        padded, _ = self.object_tokenizer.pool_padded(*region_inputs)
        num_regions, mask_num, _ = padded.shape
        local = PackedContext.from_features(local_features, local_grid_thw)
        frames = PackedContext.from_features(frame_features, frame_grid_thw)
        infused = self.object_infusion(padded, local, frames, region_frame_index)
        tokens_per_region = torch.full((num_regions,), mask_num, dtype=torch.long, device=padded.device)
        return self.object_tokenizer.project(infused.flatten(0, 1)), tokens_per_region

    def scatter_object_tokens(
        self, input_ids: torch.LongTensor, inputs_embeds: torch.Tensor, object_tokens: torch.Tensor
    ) -> torch.Tensor:
        """Replace the `<REGION>` embeddings (row-major over the batch) by the object tokens `(T, D)`."""
        region_mask = input_ids == self.config.region_token_id
        num_slots = int(region_mask.sum())
        if num_slots != object_tokens.shape[0]:
            raise ValueError(
                f"input_ids hold {num_slots} {self.config.region_token} tokens but the regions produced "
                f"{object_tokens.shape[0]} object tokens; the processor and the model must agree on mask_num "
                f"({self.config.region_settings.mask_num}) and on the region grid masks"
            )
        return inputs_embeds.masked_scatter(region_mask[..., None], object_tokens.to(inputs_embeds.dtype))

    def _check_inputs(
        self,
        input_ids: torch.LongTensor | None,
        inputs_embeds: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        pixel_inputs: dict[str, torch.Tensor | None],
        is_prefill: bool,
        has_encoder_outputs: bool,
    ) -> None:
        """Refuse inputs that do not fit together, before any of them is used.

        Checked: `input_ids` or `inputs_embeds`; an `attention_mask` of the batch size (and, at prefill, the length) of
        `input_ids`; no scene inputs for Lite; at prefill, each group of scene / region inputs given whole and
        `<image>` / `<|video_pad|>` / `<REGION>` tokens in `input_ids` only with the pixel inputs that replace them.

        Raises:
            ModelInputError: naming the argument at fault and what was expected.
        """
        if input_ids is None and inputs_embeds is None:
            raise ModelInputError("input_ids", "pass input_ids or inputs_embeds")
        name, reference = ("input_ids", input_ids) if input_ids is not None else ("inputs_embeds", inputs_embeds)
        if attention_mask is not None and attention_mask.ndim == 2:
            if attention_mask.shape[0] != reference.shape[0]:
                raise ModelInputError(
                    "attention_mask",
                    f"has batch size {attention_mask.shape[0]}; expected {reference.shape[0]}, the batch size of {name}",
                )
            if is_prefill and attention_mask.shape[1] != reference.shape[1]:
                raise ModelInputError(
                    "attention_mask",
                    f"has {attention_mask.shape[1]} positions; expected {reference.shape[1]}, the length of {name}",
                )
        lite = self.config.variant == "lite"
        scene = [name for name in ("pixel_values", "pixel_values_videos") if pixel_inputs[name] is not None]
        if lite and scene:
            raise ModelInputError(
                scene[0], "PixelRefer-Lite reads no scene tokens: pass no pixel_values / pixel_values_videos"
            )
        if pixel_inputs["region_pixel_values"] is not None and input_ids is None:
            raise ModelInputError("input_ids", "are needed to place the object tokens of region_pixel_values")
        if (
            is_prefill and input_ids is not None
        ):  # generation drops the pixel inputs after the prefill, keeps the grids
            self._check_input_groups(pixel_inputs, lite)
            self._check_placeholder_tokens(input_ids, pixel_inputs, has_encoder_outputs)

    @staticmethod
    def _check_input_groups(pixel_inputs: dict[str, torch.Tensor | None], lite: bool) -> None:
        """Each group of scene / region inputs is given whole or not at all."""
        region_group = REGION_INPUT_NAMES[:-1] if lite else REGION_INPUT_NAMES[:5]
        for group in (_IMAGE_INPUT_NAMES, _VIDEO_INPUT_NAMES, region_group):
            given = [name for name in group if pixel_inputs[name] is not None]
            if given and len(given) != len(group):
                missing = [name for name in group if pixel_inputs[name] is None]
                raise ModelInputError(
                    missing[0],
                    f"is missing while {', '.join(given)} {'is' if len(given) == 1 else 'are'} given; expected all of "
                    f"{', '.join(group)} (as PixelReferProcessor returns them)",
                )

    def _check_placeholder_tokens(
        self, input_ids: torch.LongTensor, pixel_inputs: dict[str, torch.Tensor | None], has_encoder_outputs: bool
    ) -> None:
        """`<image>` / `<|video_pad|>` / `<REGION>` tokens come with the pixel inputs (or encoder outputs) they stand for."""
        for token_id, token, pixels, what in (
            (self.config.image_token_id, "<image>", "pixel_values", "image"),
            (self.config.video_token_id, "<|video_pad|>", "pixel_values_videos", "video"),
            (self.config.region_token_id, self.config.region_token, "region_pixel_values", "region"),
        ):
            precomputed = has_encoder_outputs and pixels != "region_pixel_values"
            if token_id is None or pixel_inputs[pixels] is not None or precomputed:
                continue
            found = int((input_ids == token_id).sum())
            if found:
                raise ModelInputError(
                    pixels,
                    f"is missing: input_ids hold {found} {token} token(s) but no {what} inputs were given; build "
                    "the inputs with PixelReferProcessor, which returns the pixel inputs with the tokens that stand "
                    "for them",
                )

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        image_merge_sizes: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        video_merge_sizes: torch.LongTensor | None = None,
        video_compression_mask: torch.BoolTensor | None = None,
        region_pixel_values: torch.Tensor | None = None,
        region_grid_thw: torch.LongTensor | None = None,
        region_grid_mask: torch.BoolTensor | None = None,
        region_mask_sizes: torch.LongTensor | None = None,
        region_boxes: torch.LongTensor | None = None,
        region_image_sizes: torch.LongTensor | None = None,
        region_local_pixel_values: torch.Tensor | None = None,
        region_local_grid_thw: torch.LongTensor | None = None,
        frame_pixel_values: torch.Tensor | None = None,
        frame_grid_thw: torch.LongTensor | None = None,
        region_frame_index: torch.LongTensor | None = None,
        **kwargs,
    ) -> PixelReferModelOutputWithPast:
        r"""
        cache (`Cache`, *optional*):
            Key-value cache of the tokens before `input_ids` (`past_key_values` is accepted too).
        pixel_values_videos, video_grid_thw, video_merge_sizes, video_compression_mask:
            Sampled video frames (full variant), as in VideoLLaMA3; `video_compression_mask` drops the tokens of static
            patches.
        region_pixel_values (`torch.FloatTensor` of shape `(sum(h*w), 3 * patch_size**2)`):
            Patches of all region crops, crops concatenated (see [`PixelReferProcessor`]).
        region_grid_thw (`torch.LongTensor` of shape `(num_regions, 3)`):
            `(1, h, w)` patch grid of each crop.
        region_grid_mask (`torch.BoolTensor` of shape `(sum(mh*mw),)`):
            Which cells of each crop's grid mask belong to their region.
        region_mask_sizes (`torch.LongTensor` of shape `(num_regions, 2)`, *optional*):
            `(mh, mw)` of each grid mask where some crop was encoded at another grid (refitted into the pixel budget);
            such a crop's features are stretched to its grid mask. Default: the grids of `region_grid_thw`.
        region_boxes (`torch.LongTensor` of shape `(num_regions, 4)`):
            Crop boxes `(top, left, bottom, right)` in the pixels of the region's image, as the position encoding reads
            them.
        region_image_sizes (`torch.LongTensor` of shape `(num_regions, 2)`):
            `(height, width)` of each region's image.
        region_local_pixel_values, region_local_grid_thw:
            Lite: each region's expanded crop at the local-context size.
        frame_pixel_values, frame_grid_thw:
            Lite: every frame regions lie on, once, at the global-context size.
        region_frame_index (`torch.LongTensor` of shape `(num_regions,)`):
            Lite: which frame of `frame_pixel_values` each region lies on.
        """
        cache = _take_cache(cache, kwargs)
        is_prefill = cache is None or cache.get_seq_length() == 0
        pixel_inputs = {name: value for name, value in locals().items() if name in PIXEL_INPUT_NAMES}
        mm_encoder_outputs = kwargs.pop("mm_encoder_outputs", None) or {}
        has_encoder_outputs = bool(mm_encoder_outputs)
        self._check_inputs(input_ids, inputs_embeds, attention_mask, pixel_inputs, is_prefill, has_encoder_outputs)
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)

        groups = _encoder_groups(pixel_inputs)
        features = dict(zip(groups, self.encode_packed(list(groups.values())), strict=True)) if groups else {}
        mm_encoder_outputs.update(self._scene_encoder_outputs(groups, features))
        object_tokens_per_region = None
        if "crop" in features:
            object_tokens, object_tokens_per_region = self._region_object_tokens(features, pixel_inputs)
            inputs_embeds = self.scatter_object_tokens(input_ids, inputs_embeds, object_tokens)

        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2 and is_prefill:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)

        outputs = super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            video_compression_mask=video_compression_mask,
            mm_encoder_outputs=mm_encoder_outputs or None,
            **{CACHE_ARGUMENT: cache},
            **kwargs,
        )
        return PixelReferModelOutputWithPast(**outputs, object_tokens_per_region=object_tokens_per_region)

    def _scene_encoder_outputs(
        self, groups: dict[str, EncoderGroup], features: dict[str, torch.Tensor]
    ) -> dict[str, BaseModelOutputWithPooling]:
        """The projected scene tokens of the image and video groups, split per image / video, as the VideoLLaMA3 base
        model takes them (`mm_encoder_outputs`)."""
        outputs = {}
        for name in ("image", "video"):
            if name in features:
                _, grid, merge = groups[name]
                embeds = self.projector(features[name]).split((grid.prod(dim=1) // merge**2).tolist())
                outputs[name] = BaseModelOutputWithPooling(pooler_output=embeds)
        return outputs

    def _region_object_tokens(
        self, features: dict[str, torch.Tensor], pixel_inputs: dict[str, torch.Tensor | None]
    ) -> tuple[torch.Tensor, torch.LongTensor]:
        """`object_tokens` of the encoded crops (and Lite contexts) with the region inputs of `forward`."""
        return self.object_tokens(
            features["crop"],
            pixel_inputs["region_grid_thw"],
            pixel_inputs["region_grid_mask"],
            pixel_inputs["region_boxes"],
            pixel_inputs["region_image_sizes"],
            pixel_inputs["region_mask_sizes"],
            local_features=features.get("local"),
            local_grid_thw=pixel_inputs["region_local_grid_thw"],
            frame_features=features.get("frame"),
            frame_grid_thw=pixel_inputs["frame_grid_thw"],
            region_frame_index=pixel_inputs["region_frame_index"],
        )


EncoderGroup = tuple[torch.Tensor, torch.LongTensor, torch.LongTensor]


def _encoder_groups(pixel_inputs: dict[str, torch.Tensor | None]) -> dict[str, EncoderGroup]:
    """`(pixels, grid_thw, merge_sizes)` of each kind of image the vision encoder reads in one packed pass: scene
    images, video frames (merged 2 x 2 later), region crops and, for Lite, local and global context images."""
    groups: dict[str, EncoderGroup] = {}
    if pixel_inputs["pixel_values"] is not None:
        groups["image"] = tuple(pixel_inputs[name] for name in _IMAGE_INPUT_NAMES)
    if pixel_inputs["pixel_values_videos"] is not None:
        groups["video"] = tuple(pixel_inputs[name] for name in _VIDEO_INPUT_NAMES)
    if pixel_inputs["region_pixel_values"] is not None:
        for name, pixels, grid in (
            ("crop", "region_pixel_values", "region_grid_thw"),
            ("local", "region_local_pixel_values", "region_local_grid_thw"),
            ("frame", "frame_pixel_values", "frame_grid_thw"),
        ):
            if pixel_inputs[pixels] is not None:
                grid_thw = pixel_inputs[grid]
                groups[name] = (pixel_inputs[pixels], grid_thw, grid_thw.new_ones(len(grid_thw)))
    return groups


class PixelReferForConditionalGeneration(PixelReferPreTrainedModel, GenerationMixin):
    """PixelRefer with a language-modelling head: `forward(labels=...)` for training, `generate()` for inference."""

    config_class = PixelReferConfig
    _auto_class = "AutoModelForImageTextToText"
    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}
    _can_compile_fullgraph = False

    def __init__(self, config: PixelReferConfig):
        super().__init__(config)
        self.model = PixelReferModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def get_decoder(self) -> nn.Module:
        return self.model.language_model

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        image_merge_sizes: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        video_merge_sizes: torch.LongTensor | None = None,
        video_compression_mask: torch.BoolTensor | None = None,
        region_pixel_values: torch.Tensor | None = None,
        region_grid_thw: torch.LongTensor | None = None,
        region_grid_mask: torch.BoolTensor | None = None,
        region_mask_sizes: torch.LongTensor | None = None,
        region_boxes: torch.LongTensor | None = None,
        region_image_sizes: torch.LongTensor | None = None,
        region_local_pixel_values: torch.Tensor | None = None,
        region_local_grid_thw: torch.LongTensor | None = None,
        frame_pixel_values: torch.Tensor | None = None,
        frame_grid_thw: torch.LongTensor | None = None,
        region_frame_index: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> PixelReferCausalLMOutputWithPast:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Target ids for the causal-LM loss; `-100` positions are ignored (the processor's `return_labels=True`
            keeps only assistant tokens). Labels are shifted inside the loss.

        The cache, video and region arguments are documented in [`PixelReferModel.forward`].
        """
        cache = _take_cache(cache, kwargs)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            image_merge_sizes=image_merge_sizes,
            pixel_values_videos=pixel_values_videos,
            video_grid_thw=video_grid_thw,
            video_merge_sizes=video_merge_sizes,
            video_compression_mask=video_compression_mask,
            region_pixel_values=region_pixel_values,
            region_grid_thw=region_grid_thw,
            region_grid_mask=region_grid_mask,
            region_mask_sizes=region_mask_sizes,
            region_boxes=region_boxes,
            region_image_sizes=region_image_sizes,
            region_local_pixel_values=region_local_pixel_values,
            region_local_grid_thw=region_local_grid_thw,
            frame_pixel_values=frame_pixel_values,
            frame_grid_thw=frame_grid_thw,
            region_frame_index=region_frame_index,
            return_dict=True,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])

        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )
        # Every field the base model returned (cache, hidden states, encoder outputs, object token counts) except the
        # last hidden state, under the names of the installed transformers.
        carried = {name: value for name, value in outputs.items() if name in _CARRIED_OUTPUT_FIELDS}
        return PixelReferCausalLMOutputWithPast(loss=loss, logits=logits, **carried)

    def prepare_inputs_for_generation(self, *args, is_first_iteration: bool | None = False, **kwargs):
        model_inputs = super().prepare_inputs_for_generation(*args, is_first_iteration=is_first_iteration, **kwargs)
        if not is_first_iteration and kwargs.get("use_cache", True):
            for name in REGION_INPUT_NAMES + ("video_compression_mask",):
                model_inputs.pop(name, None)
        return model_inputs


__all__ = ["PixelReferPreTrainedModel", "PixelReferModel", "PixelReferForConditionalGeneration"]
