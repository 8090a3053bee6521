# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""LLaVA-style conversation templates (`llava/conversation.py`), with PixelRefer's chat format added.

`conv_templates` is a plain module-level dict; extend it at import time like LLaVA's:

    conv_templates["my_template"] = conv_templates["pixelrefer"].copy()
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
from enum import Enum, auto
from typing import Any

from ...runtime import IMAGE_PLACEHOLDER, REGION_PLACEHOLDER, VIDEO_PLACEHOLDER

logger = logging.getLogger(__name__)

# LLaVA's names for the placeholders
DEFAULT_IMAGE_TOKEN = IMAGE_PLACEHOLDER
DEFAULT_VIDEO_TOKEN = VIDEO_PLACEHOLDER
DEFAULT_REGION_TOKEN = REGION_PLACEHOLDER


class SeparatorStyle(Enum):
    """How `Conversation.get_prompt` joins the system prompt and the turns (the members of LLaVA-NeXT's enum)."""

    SINGLE = auto()
    TWO = auto()
    MPT = auto()
    PLAIN = auto()
    CHATML = auto()
    LLAMA_2 = auto()
    LLAMA_3 = auto()
    QWEN = auto()
    GEMMA = auto()


def _text(message: Any) -> Any:
    """LLaVA's Gradio demo stores `(text, image, mode)` tuples as messages; the prompt only uses the text."""
    return message[0] if isinstance(message, tuple) else message


@dataclasses.dataclass
class Conversation:
    """A conversation history that renders to a prompt string, as LLaVA's `Conversation`.

    `messages` is a list of `[role, message]`; a message of `None` leaves the turn open for the model to answer.
    """

    system: str
    roles: tuple[str, ...] | list[str]
    messages: list[list[Any]]
    offset: int
    sep_style: SeparatorStyle = SeparatorStyle.SINGLE
    sep: str = "###"
    sep2: str | None = None
    version: str = "Unknown"
    stop_str: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    skip_next: bool = False

    def get_prompt(self) -> str:
        """The prompt string of the conversation so far."""
        messages = [(role, _text(message)) for role, message in self.messages]
        style = self.sep_style
        if style == SeparatorStyle.CHATML:
            # Qwen / ChatML: no system block at all when the system prompt is empty.
            ret = "" if self.system == "" else self.system + self.sep + "\n"
            for role, message in messages:
                ret += f"{role}\n{message}{self.sep}\n" if message else f"{role}\n"
            return ret
        if style == SeparatorStyle.SINGLE:
            ret = self.system + self.sep
            for role, message in messages:
                ret += f"{role}: {message}{self.sep}" if message else f"{role}:"
            return ret
        if style == SeparatorStyle.TWO:
            seps = [self.sep, self.sep2]
            ret = self.system + seps[0]
            for i, (role, message) in enumerate(messages):
                ret += f"{role}: {message}{seps[i % 2]}" if message else f"{role}:"
            return ret
        if style in (SeparatorStyle.MPT, SeparatorStyle.GEMMA):
            ret = self.system + self.sep if style == SeparatorStyle.MPT else ""
            for role, message in messages:
                ret += f"{role}{message}{self.sep}" if message else role
            return ret
        if style == SeparatorStyle.PLAIN:
            seps = [self.sep, self.sep2]
            ret = self.system
            for i, (_, message) in enumerate(messages):
                if message:
                    ret += message + seps[i % 2]
            return ret
        if style == SeparatorStyle.LLAMA_2:
            ret = ""
            for i, (_, message) in enumerate(messages):
                if not message:
                    continue
                if i == 0 and self.system:
                    message = f"<<SYS>>\n{self.system}\n<</SYS>>\n\n{message}"
                ret += f"{self.sep}[INST] {message} [/INST]" if i % 2 == 0 else f" {message} {self.sep2}"
            return ret.removeprefix(self.sep) if self.sep else ret
        raise ValueError(
            f"sep_style {style} is not supported here (LLaVA renders it with a tokenizer's chat template); use "
            "SeparatorStyle.CHATML for Qwen-based models such as PixelRefer"
        )

    def append_message(self, role: str, message: Any) -> None:
        """Add a turn; `message=None` opens the turn for generation."""
        self.messages.append([role, message])

    def copy(self) -> Conversation:
        """A copy whose message list (and each `[role, message]` pair) is not shared with this conversation."""
        return dataclasses.replace(
            self,
            roles=tuple(self.roles),
            messages=[[role, message] for role, message in self.messages],
            stop_token_ids=None if self.stop_token_ids is None else list(self.stop_token_ids),
        )

    def dict(self) -> dict[str, Any]:
        """The conversation as a plain dict (the keys LLaVA's `Conversation.dict()` returns)."""
        return {
            "system": self.system,
            "roles": self.roles,
            "messages": [[role, _text(message)] for role, message in self.messages],
            "offset": self.offset,
            "sep": self.sep,
            "sep2": self.sep2,
        }


# PixelRefer: Qwen chat format with no default system prompt. The user turn starts with "<image>\n" (or "<video>\n")
# when the sample has one; regions are "<region>" placeholders the processor expands.
conv_pixelrefer_qwen2 = Conversation(
    system="",
    roles=("<|im_start|>user", "<|im_start|>assistant"),
    messages=[],
    offset=0,
    sep_style=SeparatorStyle.CHATML,
    sep="<|im_end|>",
    version="pixelrefer_qwen2",
    stop_str="<|im_end|>",
)

# PixelRefer-Lite: same format; prompts hold no "<image>" / "<video>" (the model reads object tokens only).
conv_pixelrefer_lite_qwen2 = dataclasses.replace(conv_pixelrefer_qwen2, messages=[], version="pixelrefer_lite_qwen2")

# LLaVA-NeXT's Qwen templates (ChatML with Qwen's default system prompt), for code that asks for them by name.
conv_qwen = Conversation(
    system="<|im_start|>system\nYou are a helpful assistant.",
    roles=("<|im_start|>user", "<|im_start|>assistant"),
    messages=[],
    offset=0,
    sep_style=SeparatorStyle.CHATML,
    sep="<|im_end|>",
    version="qwen",
    stop_str="<|im_end|>",
)

conv_plain = Conversation(system="", roles=("", ""), messages=[], offset=0, sep_style=SeparatorStyle.PLAIN, sep="\n")

#: The PixelRefer templates, by name (what `register_with_llava` adds to `llava.conversation.conv_templates`).
pixelrefer_conv_templates: dict[str, Conversation] = {
    "pixelrefer": conv_pixelrefer_qwen2,
    "pixelrefer_qwen2": conv_pixelrefer_qwen2,
    "pixelrefer_lite_qwen2": conv_pixelrefer_lite_qwen2,
}

default_conversation = conv_pixelrefer_qwen2

conv_templates: dict[str, Conversation] = {
    "default": conv_pixelrefer_qwen2,
    **pixelrefer_conv_templates,
    "qwen_1_5": conv_qwen,
    "qwen_2": conv_qwen,
    "plain": conv_plain,
}


def register_with_llava() -> bool:
    """Add the PixelRefer templates to `llava.conversation.conv_templates` when a `llava` package is importable.

    `llava` is never a dependency: without it (or without its `conversation` module) nothing happens. Returns
    whether the templates were registered.
    """
    if importlib.util.find_spec("llava") is None:
        return False
    try:
        llava_conversation = importlib.import_module("llava.conversation")
    except ImportError:
        logger.debug("`llava` has no importable `conversation` module; PixelRefer templates not registered")
        return False
    except Exception as error:  # a broken third-party package must not break importing this one
        logger.warning("importing llava.conversation failed (%r); PixelRefer templates not registered", error)
        return False
    templates = getattr(llava_conversation, "conv_templates", None)
    if not isinstance(templates, dict):
        logger.warning("llava.conversation has no conv_templates dict; PixelRefer templates not registered")
        return False
    templates.update(pixelrefer_conv_templates)
    logger.info("registered %s in llava.conversation.conv_templates", ", ".join(pixelrefer_conv_templates))
    return True
