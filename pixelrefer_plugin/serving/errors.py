# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The error of a request the server refuses, and its OpenAI-style JSON body."""

from __future__ import annotations

from typing import Any

from ..errors import PixelReferInputError

# HTTP status -> OpenAI error `type`.
ERROR_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    500: "server_error",
    503: "server_error",
}


class RequestError(Exception):
    """A request the server answers with an error: `status` (HTTP), `message`, `param` (the field at fault, such as
    `messages[0].content[1].image_url` or `regions[2]`) and a machine-readable `code`."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        """`{"error": {"message", "type", "param", "code"}}`, as the OpenAI API returns errors."""
        return {
            "error": {
                "message": self.message,
                "type": ERROR_TYPES.get(self.status, "invalid_request_error"),
                "param": self.param,
                "code": self.code,
            }
        }

    @classmethod
    def from_input_error(cls, error: PixelReferInputError, region_fields: list[str]) -> RequestError:
        """A 400 for an input the processor refused, naming the request field at fault.

        Args:
            error: the processor's error (its `sample_index` is the request's place in a batch, not shown).
            region_fields: the request field of each region the processor was given, in order (`regions[0]`, or
                `messages[0].content[1].image_url` for a region read from an image's alpha channel).
        """
        param = "messages"
        if error.argument == "regions" and error.item_index is not None and error.item_index < len(region_fields):
            param = region_fields[error.item_index]
        elif error.argument == "regions":
            param = "regions"
        return cls(400, f"{param}: {error.expected}", param, f"invalid_{error.argument}")


__all__ = ["ERROR_TYPES", "RequestError"]
