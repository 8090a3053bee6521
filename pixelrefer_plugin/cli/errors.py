# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The error of a bad command-line value (the library's own errors are raised as they are; see `cli/__init__.py`)."""

from __future__ import annotations

from typing import Any


class FlagError(ValueError):
    """A bad command-line value: `{flag} {value!r}: {expected}`.

    Attributes:
        flag: the flag or positional argument at fault (`--box`, `FILE`, ...).
        value: the value given, as typed.
        expected: what is wrong and what was expected.
    """

    def __init__(self, flag: str, value: Any, expected: str):
        self.flag = flag
        self.value = value if isinstance(value, str) else str(value)
        self.expected = expected
        shown = self.value if len(self.value) <= 80 else self.value[:77] + "..."
        super().__init__(f"{flag} {shown!r}: {expected}")

    def __reduce__(self):
        return type(self), (self.flag, self.value, self.expected)
