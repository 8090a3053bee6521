# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Writes a model in the released checkpoints' layout (config keys and state-dict names of the public code).

Used by the tests to check conversion on small models built here; it is the inverse of
`pixelrefer_plugin.conversion.released`, written from the released format's description, not from the converter.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import PreTrainedTokenizerBase

from ..modeling_pixelrefer import PixelReferForConditionalGeneration

# plugin prefix -> released prefix
RELEASED_PREFIXES = (
    ("model.projector.", "model.mm_projector."),
    ("model.object_tokenizer.", "model.region_encoder."),
    ("model.object_infusion.", "model.region_encoder."),
    ("model.language_model.", "model."),
    ("lm_head.", "lm_head."),
)


def released_state_dict(model: PixelReferForConditionalGeneration, vision_layout: str) -> dict[str, torch.Tensor]:
    """State dict with released key names. `vision_layout`: `"nested"` (`model.vision_encoder.vision_encoder.*`, as
    trained) or `"flat"` (`model.vision_encoder.*`, as converted from VideoLLaMA3 hub models)."""
    vision_prefix = {"nested": "model.vision_encoder.vision_encoder.", "flat": "model.vision_encoder."}[vision_layout]
    out = {}
    for key, tensor in model.state_dict().items():
        if key.startswith("model.vision_model."):
            out[vision_prefix + key[len("model.vision_model.") :]] = tensor.clone()
            continue
        for new, old in RELEASED_PREFIXES:
            if key.startswith(new):
                out[old + key[len(new) :]] = tensor.clone()
                break
        else:
            raise KeyError(key)
    if model.config.variant == "lite":  # defined upstream, never used
        width = model.config.vision_config.hidden_size
        out["model.region_encoder.mask_embedding.weight"] = torch.randn(width, 1, 1, 1)
        out["model.region_encoder.mask_embedding.bias"] = torch.zeros(width)
    return out


def released_config(model: PixelReferForConditionalGeneration) -> dict:
    """A `config.json` as the released checkpoints write it: flat Qwen2 keys plus the multimodal fields."""
    config = model.config
    text = config.text_config
    vision = config.vision_config
    return {
        "architectures": [
            "PixelReferQwen2ForCausalLM" if config.variant == "full" else "PixelReferLiteQwen2ForCausalLM"
        ],
        "model_type": "pixelrefer_qwen2" if config.variant == "full" else "pixelreferlite_qwen2",
        "hidden_size": text.hidden_size,
        "intermediate_size": text.intermediate_size,
        "num_hidden_layers": text.num_hidden_layers,
        "num_attention_heads": text.num_attention_heads,
        "num_key_value_heads": text.num_key_value_heads,
        "max_position_embeddings": text.max_position_embeddings,
        "rms_norm_eps": text.rms_norm_eps,
        "rope_theta": text.rope_parameters["rope_theta"],
        "vocab_size": text.vocab_size,
        "tie_word_embeddings": config.tie_word_embeddings,
        "hidden_act": "silu",
        "torch_dtype": "float32",
        "mm_vision_encoder": "DAMO-NLP-SG/SigLIP-NaViT",
        "mm_projector_type": "mlp2x_gelu",
        "mm_hidden_size": vision.hidden_size,
        "mm_vision_select_layer": -2,
        "spatial_merge_size": 2,
        "mm_max_length": 8192,
        "use_token_compression": True,
        "mask_num": config.region_settings.mask_num,
        "image_token_index": config.image_token_id,
        "region_token_index": config.region_token_id,
        "vision_encoder_config": {
            "model_type": "videollama3_vision_encoder",
            "hidden_size": vision.hidden_size,
            "intermediate_size": vision.intermediate_size,
            "num_hidden_layers": vision.num_hidden_layers,
            "num_attention_heads": vision.num_attention_heads,
            "patch_size": vision.patch_size,
            "hidden_act": vision.hidden_act,
            "layer_norm_eps": vision.layer_norm_eps,
        },
    }


def write_released_checkpoint(
    model: PixelReferForConditionalGeneration,
    tokenizer: PreTrainedTokenizerBase,
    out: str | Path,
    vision_layout: str = "nested",
    weights: str = "bin",
    shards: int = 1,
) -> Path:
    """Write `model` as a released checkpoint: config.json, weights (`"bin"` or `"safetensors"`, optionally sharded
    with an index file) and tokenizer files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(released_config(model), indent=2))
    state_dict = released_state_dict(model, vision_layout)
    keys = sorted(state_dict)
    chunks = [keys[i::shards] for i in range(shards)]
    suffix = "bin" if weights == "bin" else "safetensors"
    stem = "pytorch_model" if weights == "bin" else "model"
    weight_map = {}
    for index, chunk in enumerate(chunks, start=1):
        name = f"{stem}.{suffix}" if shards == 1 else f"{stem}-{index:05d}-of-{shards:05d}.{suffix}"
        part = {key: state_dict[key].contiguous() for key in chunk}
        if weights == "bin":
            torch.save(part, out / name)
        else:
            save_file(part, out / name)
        weight_map.update(dict.fromkeys(chunk, name))
    if shards > 1:
        (out / f"{stem}.{suffix}.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    tokenizer.save_pretrained(out)
    return out
