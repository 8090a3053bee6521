# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""A small byte-level BPE tokenizer built offline, with the special tokens and chat format of the real models."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<image>",
    "<|stream_start|>",
    "<|stream_end|>",
    "<REGION>",
    "<|video_pad|>",
)

_COLOURS = "red green blue yellow orange purple pink brown black white gray cyan magenta"
_SHAPES = "circle square triangle rectangle star ellipse diamond hexagon cross ring object region part"
_WORDS = (
    "what is the colour color shape size category of this that region in image video frame please describe "
    "briefly in detail which one larger smaller left right top bottom middle there are two three regions a an and or "
    "answer with option letter from given choices directly question yes no it maybe subpart output format else just "
    "person dog cat car tree sky road building table chair cup bottle time second user assistant system "
    "Time moving marked highlighted object video"
)


def _training_corpus() -> list[str]:
    lines = [_COLOURS, _SHAPES, _WORDS, "0 1 2 3 4 5 6 7 8 9 10 . , : ; ? ! ' \" ( ) [ ] - _ / \n"]
    for colour in _COLOURS.split():
        for shape in _SHAPES.split():
            lines.append(f"The {colour} {shape}. What colour is the {shape}? It is {colour}.")
    return lines


def build_tiny_tokenizer(vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on a fixed built-in corpus (deterministic, no download) and wrap it for transformers.

    Pads on the left (for batched generation); `<|im_end|>` is the end-of-sequence token.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        extra_special_tokens=[token for token in SPECIAL_TOKENS if token not in ("<|endoftext|>", "<|im_end|>")],
        model_max_length=32768,
    )
