# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer serve --model DIR`: the OpenAI-compatible API and web page of a checkpoint, batched, on one port."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import add_device_arguments
from .errors import FlagError

if TYPE_CHECKING:
    from ..serving import ServerSettings

logger = logging.getLogger(__name__)


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "serve",
        help="serve a checkpoint: OpenAI-compatible API (streaming, batched) and a web page",
        description="Serve a PixelRefer checkpoint over HTTP: POST /v1/chat/completions (OpenAI-compatible, regions "
        "in the body's `regions` or as an RGBA image's alpha channel, streaming with `stream: true`), GET /v1/models, "
        "GET /health, and a web page at / to mark regions and ask about them. Concurrent requests are batched into "
        "one generate(); vision features of images and region crops are cached by content. See docs/serving.md.",
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="checkpoint folder (or preset name)")
    parser.add_argument(
        "--served-model-name",
        metavar="NAME",
        help="name in /v1/models and the requests' `model` (default: DIR's name)",
    )
    parser.add_argument(
        "--segmenter",
        metavar="DIR",
        help="SAM 2 checkpoint or preset (see docs/segmentation.md): point and box regions become its object masks",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--max-batch-size", type=int, default=8, metavar="N", help="most requests per generate() (8)")
    parser.add_argument(
        "--batch-wait-ms", type=float, default=10.0, metavar="MS", help="how long a request waits for others (10)"
    )
    parser.add_argument(
        "--request-timeout", type=float, default=300.0, metavar="S", help="seconds per request, 0: none (300)"
    )
    parser.add_argument(
        "--cache-mb", type=float, default=512.0, metavar="MB", help="same-image feature cache size, 0: off (512)"
    )
    parser.add_argument("--max-body-mb", type=float, default=64.0, metavar="MB", help="largest request body (64)")
    parser.add_argument(
        "--max-image-pixels", type=int, default=4096 * 4096, metavar="N", help="largest image, width x height (4096²)"
    )
    parser.add_argument("--max-tokens", type=int, default=1024, metavar="N", help="largest max_tokens accepted (1024)")
    parser.add_argument(
        "--media-root", metavar="DIR", help="folder whose files requests may name by path (default: data URLs only)"
    )
    add_device_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..serving import create_app
    except ImportError as error:
        raise RuntimeError(
            f"pixelrefer serve needs the serve extra: pip install 'pixelrefer-plugin[serve]' ({error})"
        ) from None
    from ..describe import load_model, load_processor, resolve_device, resolve_dtype

    settings = _settings(args)
    _check_port(args.host, args.port)
    processor = load_processor(args.model)
    device = resolve_device(args.device)
    model = load_model(args.model, device, resolve_dtype(args.dtype, device))
    segmenter = None
    if args.segmenter is not None:
        from ..segmentation import RegionSegmenter

        segmenter = RegionSegmenter.from_pretrained(args.segmenter, device=device)
    app = create_app(model, processor, settings, segmenter)
    logger.info("serving %s on http://%s:%d (web page at /, API at /v1)", settings.model_id, args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _settings(args: argparse.Namespace) -> ServerSettings:
    """The server settings of the flags; a `FlagError` for a value out of range."""
    from ..serving import EngineSettings, RequestLimits, ServerSettings
    from ..serving.media import MediaLimits

    for flag, value, low in (
        ("--max-batch-size", args.max_batch_size, 1),
        ("--max-tokens", args.max_tokens, 1),
        ("--max-image-pixels", args.max_image_pixels, 1),
        ("--max-body-mb", args.max_body_mb, 1e-6),
        ("--batch-wait-ms", args.batch_wait_ms, 0),
        ("--request-timeout", args.request_timeout, 0),
        ("--cache-mb", args.cache_mb, 0),
    ):
        if value < low:
            raise FlagError(flag, str(value), f"expected a number >= {low:g}")
    if not 0 <= args.port <= 65535:
        raise FlagError("--port", str(args.port), "expected a port number in 0..65535")
    media_root = None
    if args.media_root is not None:
        media_root = Path(args.media_root)
        if not media_root.is_dir():
            raise FlagError("--media-root", args.media_root, "no such folder")
    return ServerSettings(
        model_id=args.served_model_name or Path(str(args.model)).name,
        engine=EngineSettings(
            max_batch_size=args.max_batch_size,
            batch_wait=args.batch_wait_ms / 1000,
            request_timeout=args.request_timeout or None,
        ),
        limits=RequestLimits(media=MediaLimits(args.max_image_pixels, media_root), max_tokens_limit=args.max_tokens),
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        cache_bytes=int(args.cache_mb * 1024 * 1024),
    )


def _check_port(host: str, port: int) -> None:
    """A `FlagError` now, before the model loads, if the address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            expected = "the port is in use" if error.errno == errno.EADDRINUSE else f"cannot listen there ({error})"
            raise FlagError(
                "--port" if error.errno == errno.EADDRINUSE else "--host", f"{host}:{port}", expected
            ) from None
