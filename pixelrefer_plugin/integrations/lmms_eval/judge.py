"""LLM judge over any OpenAI-compatible chat endpoint (OpenAI, Azure-style proxies, vLLM, SGLang, Ollama, ...).

Several region benchmarks are scored by an LLM (Ferret-Bench, VideoRefer-Bench-D, DLC-Bench, Ref-L4 CLAIR; see
``docs/evaluation.md``). Judges differ between papers, so a score is only meaningful next to the judge that produced
it: tasks report :meth:`Judge.record` with every judged metric.

Configuration (environment variables, read by :meth:`JudgeConfig.from_env`):

* ``PIXELREFER_JUDGE_MODEL`` (required): model name sent to the endpoint, e.g. ``gpt-4o-2024-08-06`` or
  ``meta-llama/Llama-3.1-8B-Instruct`` for a local vLLM server.
* ``PIXELREFER_JUDGE_BASE_URL``: OpenAI-compatible base URL ending in ``/v1`` (default: OpenAI's API).
* ``PIXELREFER_JUDGE_API_KEY``: API key; falls back to ``OPENAI_API_KEY``. Either a base URL or a key is required
  (a local server without authentication needs only the base URL).
* ``PIXELREFER_JUDGE_TEMPERATURE``: sampling temperature, default ``0``.
* ``PIXELREFER_JUDGE_TIMEOUT`` (seconds per request, default 60) and ``PIXELREFER_JUDGE_MAX_RETRIES`` (default 2)
  are optional.

Nothing touches the network at import or at construction; the ``openai`` client is created on the first
:meth:`Judge.ask`. In this repository's tests the judge talks to a real local HTTP server, but that server's
*answers* are canned: a paid LLM judge cannot run in the test environment, so judged scores are never reproduced
by the tests, only the plumbing (request contents, retries, parsing, recorded settings).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["Judge", "JudgeConfig", "JudgeError", "JudgeNotConfiguredError", "shared_judge"]

ENV_BASE_URL = "PIXELREFER_JUDGE_BASE_URL"
ENV_MODEL = "PIXELREFER_JUDGE_MODEL"
ENV_API_KEY = "PIXELREFER_JUDGE_API_KEY"
ENV_FALLBACK_API_KEY = "OPENAI_API_KEY"
ENV_TEMPERATURE = "PIXELREFER_JUDGE_TEMPERATURE"
ENV_TIMEOUT = "PIXELREFER_JUDGE_TIMEOUT"
ENV_MAX_RETRIES = "PIXELREFER_JUDGE_MAX_RETRIES"

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_NO_KEY_PLACEHOLDER = "EMPTY"  # the openai client insists on a key; unauthenticated local servers ignore it


class JudgeNotConfiguredError(RuntimeError):
    """The judge's environment variables are missing; the message names the ones to set."""


class JudgeError(RuntimeError):
    """The judge endpoint failed (after the bounded retries) or returned an unusable reply."""


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _env_number(env: Mapping[str, str], name: str, default: float, cast: type = float) -> Any:
    raw = _env(env, name)
    if raw is None:
        return cast(default)
    try:
        return cast(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a {cast.__name__}, got {raw!r}") from exc


@dataclass(frozen=True)
class JudgeConfig:
    """Judge endpoint settings. ``base_url=None`` means OpenAI's API (then ``api_key`` is required)."""

    model: str
    base_url: str | None = None
    api_key: str | None = None
    temperature: float = 0.0
    timeout: float = 60.0
    max_retries: int = 2
    retry_backoff: float = 1.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JudgeConfig:
        """Read the ``PIXELREFER_JUDGE_*`` variables (module docstring); raise :class:`JudgeNotConfiguredError`."""
        env = os.environ if env is None else env
        model = _env(env, ENV_MODEL)
        base_url = _env(env, ENV_BASE_URL)
        api_key = _env(env, ENV_API_KEY) or _env(env, ENV_FALLBACK_API_KEY)
        missing: list[str] = []
        if model is None:
            missing.append(f"{ENV_MODEL} (the judge model name, e.g. gpt-4o-2024-08-06)")
        if base_url is None and api_key is None:
            missing.append(
                f"{ENV_BASE_URL} (an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1) and/or "
                f"{ENV_API_KEY} (or {ENV_FALLBACK_API_KEY}) for {DEFAULT_BASE_URL}"
            )
        if missing:
            raise JudgeNotConfiguredError(
                "LLM judge not configured; set " + "; set ".join(missing) + f". Optional: {ENV_TEMPERATURE} "
                "(default 0). Judged metrics cannot be computed without a judge."
            )
        return cls(
            model=model,  # type: ignore[arg-type]
            base_url=base_url,
            api_key=api_key,
            temperature=_env_number(env, ENV_TEMPERATURE, 0.0),
            timeout=_env_number(env, ENV_TIMEOUT, 60.0),
            max_retries=_env_number(env, ENV_MAX_RETRIES, 2, int),
        )


def _is_retryable(exc: Exception) -> bool:
    import openai

    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


class Judge:
    """Asks an OpenAI-compatible chat model; thread-safe (one lazily created client shared by all threads)."""

    def __init__(self, config: JudgeConfig | None = None) -> None:
        self.config = config if config is not None else JudgeConfig.from_env()
        self._client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> Judge:
        """A judge configured from the environment (raises :class:`JudgeNotConfiguredError`)."""
        return cls(JudgeConfig.from_env())

    @property
    def client(self) -> Any:
        """The ``openai.OpenAI`` client (created on first use; the SDK's own retries are off, see :meth:`ask`)."""
        with self._lock:
            if self._client is None:
                try:
                    from openai import OpenAI
                except ImportError as exc:  # pragma: no cover - depends on the environment
                    raise ImportError("the LLM judge needs the openai client: pip install openai") from exc
                self._client = OpenAI(
                    api_key=self.config.api_key or _NO_KEY_PLACEHOLDER,
                    base_url=self.config.base_url or DEFAULT_BASE_URL,
                    timeout=self.config.timeout,
                    max_retries=0,
                )
            return self._client

    def ask(self, system: str, user: str, max_tokens: int | None = None) -> str:
        """Send one system + user message pair and return the reply text.

        Connection errors, timeouts, 408/409/429 and 5xx responses are retried ``config.max_retries`` times with
        exponential backoff (``retry_backoff`` × 2^attempt seconds); other errors (400, 401, 404, ...) raise
        :class:`JudgeError` at once. A reply without text content returns ``""`` (parsers then report a failure).
        """
        messages = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user})
        kwargs: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
        }
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            try:
                completion = self.client.chat.completions.create(**kwargs)
            except Exception as exc:
                if not _is_retryable(exc) or attempt + 1 == attempts:
                    raise JudgeError(
                        f"judge {self.config.model!r} at {self.config.base_url or DEFAULT_BASE_URL} failed after "
                        f"{attempt + 1} attempt(s): {type(exc).__name__}: {exc}"
                    ) from exc
                delay = self.config.retry_backoff * (2**attempt)
                logger.warning(
                    "judge request failed (%s: %s); retry %d/%d in %.2f s",
                    type(exc).__name__,
                    exc,
                    attempt + 1,
                    self.config.max_retries,
                    delay,
                )
                time.sleep(delay)
                continue
            choices = getattr(completion, "choices", None) or []
            content = choices[0].message.content if choices else None
            if not content:
                logger.warning("judge %r returned no text content", self.config.model)
                return ""
            return content
        raise AssertionError("unreachable")  # pragma: no cover

    def record(self) -> dict[str, Any]:
        """Judge settings to report next to a judged score (never the API key)."""
        return {
            "judge_model": self.config.model,
            "judge_temperature": self.config.temperature,
            "judge_base_url": self.config.base_url or DEFAULT_BASE_URL,
        }


_SHARED: dict[JudgeConfig, Judge] = {}
_SHARED_LOCK = threading.Lock()


def shared_judge() -> Judge:
    """The judge configured by the environment, one per configuration for the whole process (raises
    :class:`JudgeNotConfiguredError`)."""
    config = JudgeConfig.from_env()
    with _SHARED_LOCK:
        if config not in _SHARED:
            _SHARED[config] = Judge(config)
        return _SHARED[config]
