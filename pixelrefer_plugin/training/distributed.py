# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""How a training run meets its launcher: a DeepSpeed recipe started without one runs as a one-process job, and
DeepSpeed's communication layer uses the process group the Trainer set up (on a CPU too)."""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .recipe import RecipeError

logger = logging.getLogger(__name__)

# What a launcher (torchrun, accelerate launch with several processes, the deepspeed launcher) sets for each process.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
# Set by mpirun / Intel MPI / MVAPICH: DeepSpeed discovers the ranks from MPI itself.
MPI_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
# `accelerate launch --cpu` sets it; accelerate then leaves DeepSpeed out.
ACCELERATE_CPU_FLAG = "ACCELERATE_USE_CPU"
# The devices DeepSpeed's ZeRO runs on, by `torch.device` type: DeepSpeed's CUDA accelerator and its CPU accelerator.
ZERO_DEVICES = ("cuda", "cpu")


def launched() -> bool:
    """True when a launcher started this process as part of a distributed job (its rank is in the environment)."""
    return any(name in os.environ for name in (*RANK_VARIABLES, *MPI_VARIABLES))


def set_up_single_process() -> bool:
    """Set the environment of a one-process distributed job when no launcher set it, as transformers documents for
    DeepSpeed in a notebook (`MASTER_ADDR`, `MASTER_PORT`, `RANK`, `LOCAL_RANK`, `WORLD_SIZE`); returns whether it did.

    Without it `deepspeed.init_distributed` looks for MPI (`ModuleNotFoundError: mpi4py`). The port is a free one, so
    that two such jobs on one machine do not collide.
    """
    if launched():
        return False
    environment = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    for name, value in {**environment, "MASTER_PORT": str(_free_port())}.items():
        os.environ.setdefault(name, value)  # a MASTER_ADDR / MASTER_PORT of the user's own is kept
    logger.info(
        "no launcher set the distributed environment: running DeepSpeed as one process (MASTER_ADDR=%s MASTER_PORT=%s "
        "RANK=0 LOCAL_RANK=0 WORLD_SIZE=1); start it with torchrun, accelerate launch or deepspeed for several",
        os.environ["MASTER_ADDR"],
        os.environ["MASTER_PORT"],
    )
    return True


def accelerate_cpu_requested() -> bool:
    """Whether `accelerate launch --cpu` (or ACCELERATE_USE_CPU=1) asked for the CPU."""
    from accelerate.utils import parse_flag_from_env

    return parse_flag_from_env(ACCELERATE_CPU_FLAG)


def keep_deepspeed_on_the_cpu() -> None:
    """Drop ACCELERATE_USE_CPU (after the device was chosen from it) for a DeepSpeed run.

    accelerate sets DeepSpeed up only when it is not told to use the CPU (`AcceleratorState`), so with the flag the
    Trainer would run the ZeRO-partitioned model without DeepSpeed's engine and read empty weights. The CPU is chosen
    by `TrainingArguments(use_cpu=True)` instead, which DeepSpeed's CPU accelerator runs with.
    """
    if os.environ.pop(ACCELERATE_CPU_FLAG, None) is not None:
        logger.debug("%s dropped: the CPU is chosen by use_cpu, which keeps DeepSpeed on", ACCELERATE_CPU_FLAG)


def check_deepspeed(config: Path, device: torch.device, path: Path | None = None) -> None:
    """Refuse, in one line naming `training.deepspeed` and the fix, a DeepSpeed run that cannot start: DeepSpeed not
    installed, its config missing, or a device DeepSpeed's ZeRO does not run on.

    Raises:
        RecipeError: key `training.deepspeed`.
    """
    if importlib.util.find_spec("deepspeed") is None:
        raise RecipeError(
            path,
            "training.deepspeed",
            "DeepSpeed is not installed; install it (pip install 'pixelrefer-plugin[train]') or set "
            "training.deepspeed=null to train without it",
        )
    if not config.is_file():
        raise RecipeError(path, "training.deepspeed", f"{config} does not exist; expected a DeepSpeed JSON config")
    if device.type not in ZERO_DEVICES:
        raise RecipeError(
            path,
            "training.deepspeed",
            f"DeepSpeed ZeRO does not run on {device.type!r} devices (only {list(ZERO_DEVICES)}); set "
            "training.deepspeed=null to train without it, or train on a CUDA GPU",
        )
    from deepspeed.accelerator import get_accelerator

    accelerator = get_accelerator().device_name()
    if accelerator != device.type:
        raise RecipeError(
            path,
            "training.deepspeed",
            f"DeepSpeed's accelerator is {accelerator!r} but training runs on {device.type!r}; set DS_ACCELERATOR="
            f"{device.type} (or unset it) and start again",
        )


def share_process_group_with_deepspeed() -> None:
    """Make DeepSpeed's communication layer use the process group the Trainer set up, before any model is built.

    On a GPU, accelerate starts the process group through `deepspeed.init_distributed`. On a CPU
    (`TrainingArguments(use_cpu=True)`), transformers hands accelerate the CPU path, which starts a gloo group with
    `torch.distributed` alone, so `deepspeed.comm` stays uninitialized. `deepspeed.zero.Init` (which `from_pretrained`
    enters under ZeRO-3) then reads its config before initializing `deepspeed.comm` and counts one process:
    `train_batch_size ... 8 != 2 * 2 * 1`. Initializing `deepspeed.comm` here wraps the existing group.
    """
    import deepspeed.comm

    if torch.distributed.is_available() and torch.distributed.is_initialized() and not deepspeed.comm.is_initialized():
        deepspeed.comm.init_distributed(dist_backend=torch.distributed.get_backend(), auto_mpi_discovery=False)
    # DeepSpeed's own collectives, on every step of every process: not the user's to act on.
    warnings.filterwarnings(
        "ignore", r"`torch\.distributed\.(all_gather_into_tensor|reduce_scatter_tensor)` is deprecated", FutureWarning
    )


def check_zero3_batches(samples: Sequence[Any], variant: str, world_size: int, path: Path | None = None) -> None:
    """Refuse, before the first step, ZeRO-3 data that would make the processes run different modules.

    ZeRO-3 gathers a module's weights with a collective each time the module runs, so every process must run the same
    modules the same number of times. The full model projects the scene tokens of a batch's images and of its videos
    in two projector calls: a process whose batch holds both would gather once more than one whose batch holds only
    one kind, and the job would hang or fail in the communication backend. Lite has no scene projector.

    Raises:
        RecipeError: key `training.deepspeed`, with the ways out.
    """
    if variant == "lite" or world_size <= 1:
        return
    images = sum(1 for sample in samples if sample.images and not sample.videos)
    videos = sum(1 for sample in samples if sample.videos)
    if images and videos:
        raise RecipeError(
            path,
            "training.deepspeed",
            f"ZeRO-3 on {world_size} processes needs every batch of the full model to hold one kind of scene, but the "
            f"data mixes {images} image and {videos} video records; train them in separate runs, or use "
            "deepspeed/zero2.json",
        )


@contextmanager
def whole_weights(arguments: Any) -> Iterator[None]:
    """Inside, models are built whole, in one process (no `deepspeed.zero.Init` partitioning) although `arguments`
    enabled ZeRO-3: for the base model one process builds and saves from a registry preset."""
    from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config

    config = getattr(arguments, "hf_deepspeed_config", None)
    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if config is not None:
            set_hf_deepspeed_config(config)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
