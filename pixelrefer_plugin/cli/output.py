# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""What the `pixelrefer` command shows, and where.

One rule for every command: the command prints its result on stdout, once (`show`); library functions log their
progress (which stage runs, what it reads and writes) at INFO on stderr and never repeat the result. In a distributed
run (torchrun, accelerate, deepspeed) results and INFO logs come from the main process only; warnings and errors come
from every process.
"""

from __future__ import annotations

import importlib.util
import logging
import os

PACKAGE_LOGGER = "pixelrefer_plugin"


def is_main_process() -> bool:
    """False on the processes other than the first of a distributed launch (the launchers set RANK / LOCAL_RANK)."""
    rank = os.environ.get("RANK") or os.environ.get("LOCAL_RANK") or "0"
    return rank.strip() == "0"


def show(line: str) -> None:
    """Print a command's result line on stdout (main process only)."""
    if is_main_process():
        print(line, flush=True)


def setup_logging(verbose: bool = False) -> None:
    """The project's loggers at INFO (DEBUG with `verbose`), every other library at WARNING (INFO with `verbose`);
    the processes other than the main one log warnings and errors only (everything with `verbose`) and draw no
    progress bars."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    if verbose:
        level = logging.DEBUG
    else:
        level = logging.INFO if is_main_process() else logging.WARNING
    logging.getLogger(PACKAGE_LOGGER).setLevel(level)
    if not is_main_process():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # also transformers' bars (loading weights, ...)


def quiet_deepspeed() -> None:
    """Name DeepSpeed's accelerator (DS_ACCELERATOR=cpu) on a machine without one, unless the user set it."""
    if "DS_ACCELERATOR" in os.environ or importlib.util.find_spec("deepspeed") is None:
        return
    import torch

    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, XPU, MPS, ...
    found = accelerator.is_available() if accelerator is not None else torch.cuda.is_available()
    if not found:
        # DeepSpeed, imported by transformers and peft when it is installed, looks for an accelerator on import and,
        # finding none, prints "[WARNING] [real_accelerator.py:...] Setting accelerator to CPU..." to stdout on every
        # command. It skips that detection when DS_ACCELERATOR names the accelerator. setdefault: never override the
        # user's own value.
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
