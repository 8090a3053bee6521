# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The errors raised for inputs the processor and the model cannot use.

Every class is a `ValueError` that carries its parts as attributes, so callers (the command line, lmms-eval, the
data validator) never parse the message: `argument` (the argument at fault), `expected` (what is wrong and what was
expected), and where it applies `sample_index` and `item_index`. The message is
`argument[sample i][item j]: expected`.

This file is part of the exported model code: it imports nothing but the standard library.
"""

from __future__ import annotations


class PixelReferInputError(ValueError):
    """A user input the processor or the model cannot use. The message names the argument, the sample and the item.

    Attributes:
        argument: the argument at fault (`regions`, `images`, `videos`, `text`, `attention_mask`, ...).
        expected: what is wrong and what was expected (the message without its location).
        sample_index: the sample of the batch, when the input is per sample.
        item_index: the region / image / video of that sample.
        item_name: what an item is (`region`, `image`, `video`).
    """

    def __init__(
        self,
        argument: str,
        expected: str,
        sample_index: int | None = None,
        item_index: int | None = None,
        item_name: str = "region",
    ):
        location = argument
        if sample_index is not None:
            location += f"[sample {sample_index}]"
        if item_index is not None:
            location += f"[{item_name} {item_index}]"
        self.argument = argument
        self.expected = expected
        self.sample_index = sample_index
        self.item_index = item_index
        self.item_name = item_name
        super().__init__(f"{location}: {expected}")

    def __reduce__(self):
        return _rebuild, (type(self), self.argument, self.expected, self.sample_index, self.item_index, self.item_name)


def _rebuild(
    cls: type[PixelReferInputError],
    argument: str,
    expected: str,
    sample_index: int | None,
    item_index: int | None,
    item_name: str,
) -> PixelReferInputError:
    """Unpickle an input error whatever its subclass' `__init__` signature (errors cross process boundaries)."""
    error = cls.__new__(cls)
    PixelReferInputError.__init__(error, argument, expected, sample_index, item_index, item_name)
    return error


class RegionInputError(PixelReferInputError):
    """A region that is malformed, empty, or does not fit its image."""

    def __init__(self, expected: str, sample_index: int | None = None, region_index: int | None = None):
        super().__init__("regions", expected, sample_index, region_index, item_name="region")


class ImageInputError(PixelReferInputError):
    """An image that cannot be read or is not an RGB picture."""

    def __init__(self, expected: str, sample_index: int | None = None, image_index: int | None = None):
        super().__init__("images", expected, sample_index, image_index, item_name="image")


class VideoInputError(PixelReferInputError):
    """A video that cannot be read, is empty, or does not hold a requested frame."""

    def __init__(self, expected: str, sample_index: int | None = None, video_index: int | None = None):
        super().__init__("videos", expected, sample_index, video_index, item_name="video")


class ModelInputError(PixelReferInputError):
    """Tensors given to the model's `forward` / `generate` that do not fit together: scene tokens without their pixel
    inputs, region inputs given in part, an `attention_mask` of another shape than `input_ids`, ..."""

    def __init__(self, argument: str, expected: str):
        super().__init__(argument, expected)


__all__ = ["ImageInputError", "ModelInputError", "PixelReferInputError", "RegionInputError", "VideoInputError"]
