# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""LoRA on the language model only; object tokenizer, OCI and projector trained in full and saved with the adapter."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

# Matched with re.fullmatch against full module names: the language model's attention and MLP projections, never the
# vision encoder (whose layers also have q_proj / k_proj ... names).
LANGUAGE_MODEL_LORA_TARGETS = (
    r"^model\.language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)$"
)


def default_modules_to_save(model: nn.Module) -> list[str]:
    """The modules trained in full: the object tokenizer, Lite's OCI, and (full variant) the scene projector."""
    modules = ["object_tokenizer"]
    if model.config.variant == "lite":
        modules.append("object_infusion")  # Lite never uses the scene projector: leave it out (no unused params)
    else:
        modules.append("projector")
    return modules


def apply_lora(model: nn.Module, lora: dict[str, Any]) -> nn.Module:
    """Wrap `model` with peft LoRA as the recipe's `lora` section says; returns the model to train.

    With `enabled: false` every language-model weight is trained (plus the modules to save) and the vision encoder
    stays frozen unless `train_vision_encoder: true` (for a random-init base such as the demo's); the model is
    returned unwrapped.
    """
    modules_to_save = list(lora.get("modules_to_save") or default_modules_to_save(model))
    if not lora.get("enabled", True):
        train_vision = bool(lora.get("train_vision_encoder", False))
        for name, parameter in model.named_parameters():
            parameter.requires_grad = train_vision or not name.startswith("model.vision_model.")
        logger.info(
            "LoRA disabled: training all %d %sparameters", _count(model), "" if train_vision else "non-vision "
        )
        return model
    if "train_vision_encoder" in lora:
        raise ValueError("lora.train_vision_encoder is only valid with lora.enabled: false (full training)")

    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=int(lora.get("r", 64)),
        lora_alpha=int(lora.get("alpha", 16)),
        lora_dropout=float(lora.get("dropout", 0.05)),
        target_modules=lora.get("target_modules", LANGUAGE_MODEL_LORA_TARGETS),
        modules_to_save=modules_to_save,
        trainable_token_indices={"embed_tokens": [model.config.region_token_id]},
    )
    with _trainable_tokens_on_any_accelerator():
        peft_model = get_peft_model(model, config)
    vision = [n for n, p in peft_model.named_parameters() if p.requires_grad and ".vision_model." in n]
    if vision:
        raise RuntimeError(f"LoRA must not train vision-encoder weights, but these are trainable: {vision[:5]}")
    logger.info(
        "LoRA r=%d on the language model; fully trained: %s; %d trainable parameters",
        config.r,
        ", ".join(modules_to_save),
        _count(peft_model),
    )
    return peft_model


def _count(model: nn.Module) -> int:
    return sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters() if p.requires_grad)


def _shape(parameter: nn.Parameter) -> torch.Size:
    """The parameter's full shape, also when ZeRO-3 has partitioned it (then its data is an empty placeholder)."""
    return getattr(parameter, "ds_shape", parameter.shape)


def _collect_token_weights(layer: nn.Module, weight: torch.Tensor, rows: Any, embed_dim: int) -> torch.Tensor:
    """The rows of a ZeRO-3 partitioned embedding that `trainable_token_indices` trains, on every process."""
    import deepspeed

    with deepspeed.zero.GatheredParameters([weight], modifier_rank=None):
        return weight[rows].detach().clone()


@contextmanager
def _trainable_tokens_on_any_accelerator() -> Iterator[None]:
    """Under ZeRO-3, peft (0.17-0.21) collects the `<REGION>` embedding row on rank 0 and broadcasts it into a buffer
    it allocates with `torch.cuda.current_device()` ("only CUDA is implemented"), which fails on DeepSpeed's CPU
    accelerator. Inside, the row is gathered with `deepspeed.zero.GatheredParameters` on whatever device holds the
    weight: the same values on CUDA, and the CPU works too."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
    from peft.utils.integrations import check_deepspeed_zero3_enabled

    original = getattr(TrainableTokensLayer, "_collect_token_weights", None)
    if original is None or not check_deepspeed_zero3_enabled():
        yield
        return
    TrainableTokensLayer._collect_token_weights = _collect_token_weights
    try:
        yield
    finally:
        TrainableTokensLayer._collect_token_weights = original


def parameter_groups(
    model: nn.Module, learning_rates: dict[str, float], default_lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """Optimizer groups: one per module with its own learning rate, each split into decay / no-decay.

    A parameter belongs to the first module name of `learning_rates` found in its name (`object_tokenizer`,
    `object_infusion`, `projector`, `region_token` for the trainable `<REGION>` embedding row); others use
    `default_lr`. Biases and norm weights get no weight decay.
    """
    patterns = {
        "object_tokenizer": ".object_tokenizer.",
        "object_infusion": ".object_infusion.",
        "projector": ".projector.",
        "region_token": "trainable_tokens",
    }
    unknown = sorted(set(learning_rates) - set(patterns) - {"default"})
    if unknown:
        raise ValueError(f"learning_rates: unknown module(s) {unknown}; expected default or {sorted(patterns)}")
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        module = next((key for key, part in patterns.items() if part in name and key in learning_rates), "default")
        decay = len(_shape(parameter)) >= 2 and "norm" not in name  # ZeRO-3: the shape before partitioning
        groups.setdefault((module, decay), []).append(parameter)
    return [
        {
            "params": params,
            "lr": learning_rates.get(module, default_lr),
            "weight_decay": weight_decay if decay else 0.0,
            "name": f"{module}{'' if decay else '_no_decay'}",
        }
        for (module, decay), params in sorted(groups.items())
    ]
