# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer train RECIPE.yaml`: HF Trainer + peft LoRA on region data, one process to many (torchrun, accelerate,
deepspeed launchers), resuming after an interruption."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, Trainer, TrainingArguments
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.trainer_callback import TrainerState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, enable_full_determinism, set_seed

from ..checkpoint_folders import move_files_into
from ..runtime import best_device, preferred_dtype, resolve_dtype
from .distributed import (
    accelerate_cpu_requested,
    check_deepspeed,
    check_zero3_batches,
    keep_deepspeed_on_the_cpu,
    set_up_single_process,
    share_process_group_with_deepspeed,
    whole_weights,
)
from .lora import apply_lora, parameter_groups
from .recipe import Recipe, segmenter_arguments, validate_recipe

logger = logging.getLogger(__name__)

BASE_MODEL_DIR = "base-model"
# Published stage-1 learning rates: language model 1e-5 (LoRA usually uses ~2e-4), object tokenizer 1e-3.
DEFAULT_LEARNING_RATES = {"object_tokenizer": 1e-3, "object_infusion": 1e-3}
# `data.synthetic` options: the arguments of `write_synthetic_dataset`.
SYNTHETIC_OPTIONS = ("num_records", "seed", "size", "objects", "kinds", "video_fraction")
# The final save is written here (inside `output_dir`) and then moved into `output_dir`.
FINAL_SAVE_DIR = ".final-save.partial"
# The files that make `output_dir` load as a model (peft adapter, or full model without LoRA): moved in last.
LOADABLE_MARKERS = ("adapter_config.json", "config.json")


class PixelReferTrainer(Trainer):
    """`Trainer` with one optimizer group per module (object tokenizer, OCI, projector, LoRA / LLM)."""

    def __init__(self, *args, learning_rates: dict[str, float] | None = None, **kwargs):
        self.module_learning_rates = dict(learning_rates or {})
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = model if model is not None else self.model
            groups = parameter_groups(
                model, self.module_learning_rates, self.args.learning_rate, self.args.weight_decay
            )
            optimizer_class, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, model)
            optimizer_kwargs.pop("lr", None)
            self.optimizer = optimizer_class(groups, **optimizer_kwargs)
            for group in groups:
                logger.info("optimizer group %s: %d tensors, lr %g", group["name"], len(group["params"]), group["lr"])
        return self.optimizer


def prepare_base_model(recipe: Recipe, output_dir: Path, is_main_process: bool) -> Path:
    """The checkpoint training starts from: the recipe's directory, or a registry preset built (random init) once into
    `output_dir/base-model` so adapters and resumes refer to a real folder."""
    candidate = recipe.resolve(recipe.model)
    if candidate.is_dir():
        return candidate
    from ..presets import build_preset, list_presets

    if recipe.model not in list_presets():
        raise ValueError(f"model {recipe.model!r} is neither a checkpoint directory nor a preset ({list_presets()})")
    base = output_dir / BASE_MODEL_DIR
    if is_main_process and not (base / "config.json").exists():
        # overwrite: a base-model folder without config.json is an unfinished write of this run's own
        build_preset(recipe.model, base, seed=int(recipe.training.get("seed", 42)), overwrite=True)
    return base


def training_device(recipe: Recipe) -> torch.device:
    """The device type the Trainer trains on: the runtime policy's (several processes: one GPU each), or the CPU
    with `training.use_cpu: true` or `accelerate launch --cpu`."""
    return torch.device("cpu") if recipe.training.get("use_cpu") or accelerate_cpu_requested() else best_device()


def training_arguments(recipe: Recipe) -> TrainingArguments:
    """`TrainingArguments` from the recipe's `training` section, with this project's defaults.

    With `training.deepspeed`, creating them sets up the process group (and, without a launcher, a one-process
    distributed environment first); DeepSpeed's communication layer then uses that group.
    """
    settings = dict(recipe.training)
    settings.pop("resume", None)
    settings["output_dir"] = str(recipe.output_dir)
    device = training_device(recipe)  # the Trainer places the model itself
    if settings.get("deepspeed"):
        settings["deepspeed"] = str(recipe.resolve(settings["deepspeed"]))
        check_deepspeed(Path(settings["deepspeed"]), device, recipe.path)
        set_up_single_process()
        keep_deepspeed_on_the_cpu()
    if settings.get("bf16") == "auto":
        settings["bf16"] = preferred_dtype(device) == torch.bfloat16
    settings.setdefault("remove_unused_columns", False)  # samples are RegionSample objects, not dicts of columns
    settings.setdefault("report_to", "none")
    settings.setdefault("ddp_find_unused_parameters", False)
    if settings.get("activation_checkpointing"):
        settings.setdefault("activation_checkpointing_kwargs", {"use_reentrant": False})
    if device.type == "cpu":
        settings.setdefault("use_cpu", True)
    arguments = TrainingArguments(**settings)
    if arguments.deepspeed:
        share_process_group_with_deepspeed()
    return arguments


def build_dataset(recipe: Recipe, variant: str, output_dir: Path, is_main_process: bool):
    from .data import RegionConversationDataset

    data = recipe.data
    if "synthetic" in data:
        from .synthetic import write_synthetic_dataset

        options = dict(data["synthetic"] or {})
        unknown = sorted(set(options) - set(SYNTHETIC_OPTIONS))
        if unknown:
            raise ValueError(
                f"data.synthetic: unknown option(s) {unknown}; expected some of {list(SYNTHETIC_OPTIONS)}"
            )
        folder = output_dir / "synthetic-data"
        path = folder / "train.json"
        stamp = folder / "options.json"
        written = json.loads(stamp.read_text()) if stamp.exists() and path.exists() else None
        if is_main_process and written != options:
            settings = {
                **options,
                "num_records": int(options.get("num_records", 32)),
                "seed": int(options.get("seed", 0)),
            }
            write_synthetic_dataset(folder, **settings)
            stamp.write_text(json.dumps(options))
        _wait_for_everyone()
        return RegionConversationDataset(path, folder, variant=variant, skip_invalid=bool(data.get("skip_invalid")))
    root = recipe.resolve(data.get("root", "."))
    return RegionConversationDataset(
        recipe.resolve(data["train"]),
        root,
        variant=variant,
        skip_invalid=bool(data.get("skip_invalid")),
        **segmenter_arguments(recipe),
    )


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest `checkpoint-N` folder that was completely written (the Trainer writes `trainer_state.json` last), so
    a run killed while saving resumes from the previous checkpoint instead of a half-written one."""
    candidates = []
    for folder in output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = folder.name.rsplit("-", 1)[-1]
        if folder.is_dir() and step.isdigit():
            candidates.append((int(step), folder))
    for _, folder in sorted(candidates, reverse=True):
        if (folder / "trainer_state.json").is_file():
            return folder
        logger.warning("skipping incomplete checkpoint %s (no trainer_state.json)", folder)
    return None


class RunAlreadyComplete(Exception):
    """`output_dir` already holds the result of a finished run; the message says how to train again."""


def completed_run(output_dir: Path, args: TrainingArguments) -> TrainerState | None:
    """The final state of a finished run in `output_dir` (its adapter or model saved, `trainer_state.json` written
    last, at or past the steps `args` ask for), or None when training has something to do."""
    state_path = output_dir / "trainer_state.json"
    saved = any((output_dir / name).is_file() for name in ("adapter_config.json", "config.json"))
    if not (saved and state_path.is_file()):
        return None
    state = TrainerState.load_from_json(str(state_path))
    if args.max_steps > 0:
        done = state.global_step >= args.max_steps
    else:  # trained by epochs
        done = state.epoch is not None and state.epoch >= args.num_train_epochs - 1e-6
    return state if done else None


def save_final_model(trainer: Trainer, processor: Any, output_dir: Path) -> None:
    """Save the trained adapter (or model) and the processor to `output_dir` so that it never holds a config beside
    weights that are not all written: every process writes into `output_dir/.final-save.partial`, then the main
    process moves the files in, `adapter_config.json` / `config.json` last. A previous final save (and its
    `trainer_state.json`, written after this) is removed first, so an interrupted save leaves no loadable result."""
    partial = output_dir / FINAL_SAVE_DIR
    if trainer.is_world_process_zero():
        shutil.rmtree(partial, ignore_errors=True)
        for name in ("trainer_state.json", *LOADABLE_MARKERS):
            (output_dir / name).unlink(missing_ok=True)
    _wait_for_everyone()
    trainer.save_model(str(partial))  # every process: DeepSpeed / FSDP gather the weights collectively
    if trainer.is_world_process_zero():
        processor.save_pretrained(partial)
        move_files_into(partial, output_dir, last=LOADABLE_MARKERS)
    _wait_for_everyone()


def _wait_for_everyone() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


@dataclass
class TrainingResult:
    """What `run_training` leaves behind: the trained model (peft-wrapped with LoRA), its processor, metrics and the
    folder holding the adapter, checkpoints and the base model."""

    model: Any
    processor: Any
    metrics: dict[str, Any]
    output_dir: Path
    base_model: Path
    global_step: int = 0


def run_training(recipe: Recipe) -> TrainingResult:
    """Train as the recipe says. Saves checkpoints to `output_dir/checkpoint-*` and, at the end, the adapter (or the
    full model without LoRA) and the processor to `output_dir`.

    Raises:
        RunAlreadyComplete: with `resume: auto` (the default), when `output_dir` holds a finished run (nothing is
            written).
    """
    import pixelrefer_plugin  # noqa: F401  (registers the Auto classes)

    from .data import RegionDataCollator

    validate_recipe(recipe)
    args = training_arguments(recipe)
    output_dir = Path(args.output_dir)
    resume = recipe.training.get("resume", "auto")
    finished = completed_run(output_dir, args) if resume == "auto" else None
    if finished is not None:
        raise RunAlreadyComplete(
            f"{output_dir} already holds a finished run (step {finished.global_step} of {finished.max_steps}); to "
            f"train again, set a new training.output_dir or remove {output_dir}"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    with whole_weights(args):
        base = prepare_base_model(recipe, output_dir, args.process_index == 0)
    _wait_for_everyone()

    # Seeded before the LoRA matrices are drawn (the Trainer seeds only once it is built): the same recipe starts from
    # the same adapter in every run, on any number of processes.
    if args.full_determinism:
        enable_full_determinism(args.seed)
    else:
        set_seed(args.seed)
    dtype = resolve_dtype("bfloat16" if args.bf16 else "float16" if args.fp16 else "float32", args.device)
    model = AutoModelForImageTextToText.from_pretrained(base, trust_remote_code=True, dtype=dtype)
    model.config.use_cache = False
    processor = AutoProcessor.from_pretrained(base, trust_remote_code=True)
    if args.activation_checkpointing:
        model.enable_input_require_grads()
    model = apply_lora(model, recipe.lora)

    dataset = build_dataset(recipe, model.config.variant, output_dir, args.process_index == 0)
    if is_deepspeed_zero3_enabled():
        check_zero3_batches(dataset.samples, model.config.variant, args.world_size, recipe.path)
    learning_rates = {**DEFAULT_LEARNING_RATES, **recipe.learning_rates}
    learning_rates.setdefault("default", args.learning_rate)
    trainer = PixelReferTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=RegionDataCollator(processor),
        processing_class=processor,
        learning_rates=learning_rates,
    )
    checkpoint = None
    if resume == "auto":
        checkpoint = last_complete_checkpoint(output_dir)
    elif resume:
        checkpoint = recipe.resolve(resume)
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    save_final_model(trainer, processor, output_dir)
    metrics = dict(result.metrics)  # the Trainer has logged them: the run's result is the caller's to show
    trainer.save_state()
    return TrainingResult(trainer.model, processor, metrics, output_dir, base, result.global_step)
