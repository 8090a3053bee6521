# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""A real OpenAI-compatible chat-completions server on 127.0.0.1 whose *answers* are canned.

The judged tasks call a paid LLM judge, the one component that cannot run here: the tests point the judge client at
this server and choose each reply from the prompt it receives.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeJudgeServer:
    """A real HTTP server on 127.0.0.1 speaking OpenAI chat completions, with canned (fake) judge replies.

    `requests` holds each request body; `calls` the same with the request `path` and `authorization` header.
    `statuses` lists HTTP statuses to answer with first (an error body each), before the canned replies (200).
    A path other than `/v1/chat/completions` gets 404.
    """

    def __init__(self, canned_reply: Callable[[str], str]) -> None:
        """`canned_reply(last user message) -> reply text`."""
        self.requests: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append(body)
                server.calls.append(
                    {"path": self.path, "authorization": self.headers.get("Authorization"), "body": body}
                )
                status = server.statuses.pop(0) if server.statuses else 200
                if self.path != "/v1/chat/completions":
                    status = 404
                if status == 200:
                    payload: dict[str, Any] = {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {
                                    "role": "assistant",
                                    "content": canned_reply(body["messages"][-1]["content"]),
                                },
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                else:
                    payload = {"error": {"message": f"canned status {status}", "type": "test"}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server API
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @contextmanager
    def running(self) -> Iterator[FakeJudgeServer]:
        """Serve in a background thread for the duration of the `with` block."""
        self.thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
