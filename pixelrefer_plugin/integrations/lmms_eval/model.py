# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""lmms-eval model wrappers: `--model pixelrefer` (chat) and `--model pixelrefer --force_simple` (simple).

The wrappers read each request's raw region document (`self.task_dict[task][split][doc_id]`, schema in
`docs/evaluation.md`) and build the prompt, image / video and regions from it, so the regions reach the model as real
masks; the task's `ctx` / `doc_to_visual` / `doc_to_messages` (meant for models without region inputs) are not used
for the prompt.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from accelerate import Accelerator
from lmms_eval import utils
from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts
from lmms_eval.api.model import lmms
from loguru import logger as eval_logger
from tqdm import tqdm

from ...errors import PixelReferInputError
from ...loading import context_length, load_model, load_processor
from ...runtime import DTYPE_NAMES, IMAGE_PLACEHOLDER, REGION_PLACEHOLDER, VIDEO_PLACEHOLDER, resolve_device
from .documents import DocumentInputs, document_id, document_inputs, prompt_content, strip_scene_tags

if TYPE_CHECKING:
    from ...segmentation import RegionSegmenter

DEFAULT_MAX_NEW_TOKENS = 128
MAX_ROUNDS = 100  # guard against multi-round tasks that never send the terminal signal

# gen_kwargs keys passed on to `generate` (besides max_new_tokens / temperature / until, handled explicitly).
_GENERATE_KWARGS = (
    "top_p",
    "top_k",
    "num_beams",
    "repetition_penalty",
    "length_penalty",
    "no_repeat_ngram_size",
    "min_new_tokens",
)
# gen_kwargs keys of other lmms-eval models that mean nothing here.
_IGNORED_GEN_KWARGS = ("image_aspect_ratio", "modalities", "max_length")
_IGNORED_MODEL_ARGS = ("max_batch_size",)


class Request(NamedTuple):
    """The arguments of one lmms-eval request that the wrappers read, whatever the request's layout.

    `gen_kwargs` is the task's `generation_kwargs` (`None` for log-likelihood requests), `next_round` the task's
    `doc_to_text` / `doc_to_messages` of a multi-round request, `target` the continuation (or `doc_to_target`) of a
    log-likelihood request.
    """

    ctx: str
    doc_id: int
    task: str
    split: str
    gen_kwargs: dict[str, Any] | None = None
    next_round: Callable | None = None
    target: Any = None

    @property
    def order(self) -> tuple[str, str, int]:
        """Sort key that keeps documents in their task order."""
        return (self.split, self.task, self.doc_id)

    def label(self, doc: Mapping[str, Any]) -> str:
        """How errors and logs name the request's document."""
        return f"document {document_id(doc, self.doc_id)!r} ({self.task}/{self.split} #{self.doc_id})"


def _check_local_checkpoint(pretrained: str) -> None:
    """A `pretrained` written as a path (absolute, `./`, `../`, `~`, or several `/`) must be an existing folder; a
    Hub id (`org/name`) or a preset name is left to the loader."""
    path = Path(pretrained).expanduser()
    looks_local = path.is_absolute() or pretrained.startswith((".", "~")) or pretrained.count("/") > 1
    if looks_local and not path.is_dir():
        raise FileNotFoundError(f"--model_args pretrained={pretrained}: no such checkpoint folder")


def _model_args_dtype(dtype: str | None, kwargs: dict[str, Any]) -> str | None:
    """`dtype` (or transformers 4.x's `torch_dtype`), checked, after refusing unknown `--model_args` keys."""
    if dtype is None and kwargs.get("torch_dtype") is not None:
        dtype = kwargs.pop("torch_dtype")
    unknown = sorted(key for key, value in kwargs.items() if value is not None and key not in _IGNORED_MODEL_ARGS)
    if unknown:
        parameters = inspect.signature(PixelReferSimple.__init__).parameters.values()
        known = [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self"]
        raise ValueError(f"--model_args: unknown argument(s) {unknown}; known: {[*known, 'torch_dtype']}")
    if dtype is not None and str(dtype) not in DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {DTYPE_NAMES}, got {dtype!r}")
    return dtype


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no"):
        return False
    if isinstance(value, int):
        return bool(value)
    raise ValueError(f"{name} must be true or false, got {value!r}")


def _as_int(value: Any, name: str, minimum: int = 1) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if number != float(value) or number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def _as_stop_strings(until: Any) -> list[str]:
    if until is None:
        return []
    if isinstance(until, str):
        until = [until]
    if not isinstance(until, Sequence) or not all(isinstance(stop, str) for stop in until):
        raise ValueError(f"gen_kwargs['until'] must be a string or a list of strings, got {until!r}")
    return [stop for stop in until if stop]


def truncate_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    """`text` up to the first occurrence of any stop string."""
    end = len(text)
    for stop in stop_strings:
        position = text.find(stop)
        if position != -1:
            end = min(end, position)
    return text[:end]


class LoglikelihoodResult(tuple, GenerationResult):
    """`(logprob, is_greedy)`, as lmms' `loglikelihood` returns, that survives lmms-eval 0.7.3's evaluator.

    The evaluator passes every model output through `unwrap_generation_output`, which turns a bare `(float, bool)`
    into its string (so `multiple_choice` scoring fails with "too many values to unpack"); a `GenerationResult` is
    unwrapped to its `text`, here the plain pair.
    """

    token_counts = None

    def __new__(cls, logprob: float, is_greedy: bool) -> LoglikelihoodResult:
        return super().__new__(cls, (float(logprob), bool(is_greedy)))

    def __init__(self, logprob: float, is_greedy: bool) -> None:  # the tuple is built in __new__
        pass

    def __getnewargs__(self) -> tuple[float, bool]:  # pickle / deepcopy
        return (self[0], self[1])

    @property
    def text(self) -> tuple[float, bool]:
        return (self[0], self[1])


class PixelReferSimple(lmms):
    """PixelRefer for lmms-eval's simple (`ConfigurableTask`) requests: generation, log-likelihood, multi-round.

    Args:
        pretrained: PixelRefer checkpoint folder, Hub id or preset name (`pixelrefer-7b`; see
            `pixelrefer_plugin.loading`).
        device: `"auto"` / unset (CUDA when available, else the CPU), `"cpu"`, `"cuda"`, `"cuda:1"`...; a device this
            machine lacks is an error (`pixelrefer_plugin.runtime`). Under `accelerate launch` with several processes
            each process uses its own `accelerator.device` (on CPUs: `ACCELERATE_USE_CPU=1`, gloo).
        dtype: `"auto"` / unset (bfloat16 on CUDA, float32 on the CPU), `"float32"`, `"bfloat16"`, `"float16"` or
            their short names (`torch_dtype` is accepted too).
        attn_implementation: default flash-attn 2 when installed on CUDA, else sdpa.
        batch_size: documents per `generate` / forward call.
        max_new_tokens: default when the task's `generation_kwargs` set none.
        trust_remote_code: passed to `from_pretrained`.
        system_prompt: optional system message (PixelRefer is trained without one).
        use_cache: KV cache during generation.
        segmenter: a SAM 2 checkpoint (folder, hub id or preset such as `sam2.1-hiera-tiny`); `point` / `box` regions
            of the documents become the masks it finds before they reach the processor (see docs/segmentation.md).
        kwargs: other `--model_args` keys; `None` values (lmms-eval's unset `max_batch_size`, ...) are ignored, others
            refused with the list of known arguments.
    """

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        device: str | None = None,
        dtype: str | None = None,
        attn_implementation: str | None = None,
        batch_size: int | str = 1,
        max_new_tokens: int | str = DEFAULT_MAX_NEW_TOKENS,
        trust_remote_code: bool | str = True,
        system_prompt: str | None = None,
        use_cache: bool | str = True,
        segmenter: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        dtype = _model_args_dtype(dtype, kwargs)
        _check_local_checkpoint(pretrained)
        if isinstance(batch_size, str) and batch_size.startswith("auto"):
            eval_logger.warning(f"PixelRefer: batch_size={batch_size!r} is not supported; using 1")
            batch_size = 1
        self.batch_size_per_gpu = _as_int(batch_size, "batch_size")
        self.max_new_tokens = _as_int(max_new_tokens, "max_new_tokens")
        self.use_cache = _as_bool(use_cache, "use_cache")
        self.system_prompt = self._resolve_system_prompt(system_prompt) if system_prompt else None
        self._device = self._process_device(device)
        self._load(pretrained, dtype, attn_implementation, _as_bool(trust_remote_code, "trust_remote_code"))
        self.segmenter = self._load_segmenter(segmenter) if segmenter else None
        self._warned_gen_kwargs: set[str] = set()

    def _process_device(self, device: str | None) -> torch.device:
        """This process' device: `accelerator.device` when lmms-eval runs several processes (the rank and world size
        are set then), else `device` by the runtime policy; a CUDA device always with its index."""
        accelerator = Accelerator()
        launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if accelerator.num_processes == 1 and launched > 1:
            # torchrun / `accelerate launch --multi_gpu` on a machine without GPUs: every process would evaluate every
            # document on its own and write the same results
            raise RuntimeError(
                f"PixelRefer: started as one of WORLD_SIZE={launched} processes, but accelerate set up no process "
                "group (no GPU was found); on CPUs set ACCELERATE_USE_CPU=1 so that the processes share the documents "
                "over gloo"
            )
        if accelerator.num_processes == 1:
            target = resolve_device(device)
        else:
            target = accelerator.device
            self.accelerator = accelerator
            self._rank = accelerator.process_index
            self._world_size = accelerator.num_processes
            if accelerator.is_local_main_process:
                eval_logger.info(f"PixelRefer: {accelerator.num_processes} processes with data parallelism")
        if target.type == "cuda" and target.index is None:
            target = torch.device("cuda", torch.cuda.current_device())
        return target

    def _load(self, pretrained: str, dtype: str | None, attn_implementation: str | None, trust: bool) -> None:
        """Load the model and processor on `self.device` (see `pixelrefer_plugin.loading`)."""
        model = load_model(
            pretrained, self.device, dtype, attn_implementation=attn_implementation, trust_remote_code=trust
        )
        self._model = model
        self.processor = load_processor(pretrained)
        self._tokenizer = self.processor.tokenizer
        self._config = model.config
        self._max_length = context_length(model.config)
        self.variant: str = self.processor.variant
        eval_logger.info(
            f"PixelRefer ({self.variant}) loaded from {pretrained} on {self.device} ({model.dtype}, "
            f"{model.config._attn_implementation})"
        )

    def _load_segmenter(self, segmenter: str) -> RegionSegmenter:
        """The SAM 2 [`RegionSegmenter`] of `--model_args segmenter=...`, on the model's device."""
        from ...segmentation import RegionSegmenter

        loaded = RegionSegmenter.from_pretrained(segmenter, device=self.device)
        eval_logger.info(f"PixelRefer: point / box regions become {segmenter} masks")
        return loaded

    # --- properties lmms-eval and the built-in wrappers expose ---------------------------------------------------
    @property
    def config(self):
        return self._config

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def model(self) -> torch.nn.Module:
        if not hasattr(self, "_model"):
            raise RuntimeError("the model was released by lmms-eval's clean(); create a new wrapper to evaluate again")
        return self._model

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids("<|im_end|>")

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    @property
    def device(self) -> torch.device:
        return self._device

    # --- request layouts (simple; the chat subclass overrides) ---------------------------------------------------
    def _generation_request(self, args: tuple) -> Request:
        """A `generate_until` request: `(ctx, gen_kwargs, doc_to_visual, doc_id, task, split)`."""
        ctx, gen_kwargs, _doc_to_visual, doc_id, task, split = args
        return Request(ctx, doc_id, task, split, gen_kwargs=gen_kwargs)

    def _multi_round_request(self, args: tuple) -> Request:
        """A `generate_until_multi_round` request: `(ctx, gen_kwargs, doc_to_visual, doc_to_text, doc_id, task,
        split)`."""
        ctx, gen_kwargs, _doc_to_visual, doc_to_text, doc_id, task, split = args
        return Request(ctx, doc_id, task, split, gen_kwargs=gen_kwargs, next_round=doc_to_text)

    @staticmethod
    def _loglikelihood_request(args: tuple) -> Request:
        """A `loglikelihood` request: `(ctx, continuation or doc_to_target, doc_to_visual, doc_id, task, split)`."""
        ctx, target, _doc_to_visual, doc_id, task, split = args
        return Request(ctx, doc_id, task, split, target=target)

    def _next_round(
        self, next_round: Callable, doc: Mapping[str, Any], round_idx: int, outputs: list[str], info: Any
    ) -> tuple[str | None, list[str], Any]:
        """Ask the task for round `round_idx`: `(text or None when done, outputs so far, round info)`.

        lmms-eval's simple protocol: `doc_to_text(doc, previous_output=..., round_idx=..., previous_round_info=...)`
        returns `(visuals, text, terminal, round_outputs, round_info)`; the visuals are for models without region
        inputs and are not used (the document's image / video is).
        """
        payload = next_round(doc, previous_output=list(outputs), round_idx=round_idx, previous_round_info=info)
        if not (isinstance(payload, tuple) and len(payload) == 5):
            eval_logger.warning(
                "PixelRefer: doc_to_text does not follow the multi-round protocol (a 5-tuple (visuals, text, terminal, "
                f"previous_output, previous_round_info)); got {type(payload).__name__}, stopping after round {round_idx}"
            )
            return None, outputs, info
        _visuals, text, terminal, round_outputs, info = payload
        outputs = list(round_outputs) if round_outputs is not None else outputs
        return (None if terminal else text), outputs, info

    # --- documents -> model inputs -------------------------------------------------------------------------------
    def _document(self, request: Request) -> Mapping[str, Any]:
        """The region document a request is about (`self.task_dict[task][split][doc_id]`)."""
        try:
            return self.task_dict[request.task][request.split][request.doc_id]
        except (KeyError, IndexError, TypeError) as error:
            raise KeyError(
                f"PixelRefer reads region documents from self.task_dict, which has no document {request.doc_id} of "
                f"{request.task}/{request.split} (lmms-eval's evaluator fills it before sending requests)"
            ) from error

    def _chat_text(self, turns: Sequence[tuple[str, str]], add_generation_prompt: bool = True) -> str:
        """Chat-template the turns `(role, text)`; leading `<image>\\n` / `<video>\\n` tags become content items."""
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        for role, text in turns:
            content = prompt_content(text) if role == "user" else [{"type": "text", "text": text}]
            messages.append({"role": role, "content": content})
        return self.processor.apply_chat_template(
            messages, add_generation_prompt=add_generation_prompt, tokenize=False
        )

    def _encode(self, texts: list[str], samples: list[DocumentInputs], labels: list[str]):
        """Processor batch of chat texts with their documents' images, videos and regions, on the model's device;
        with a segmenter, `point` / `box` regions first become the masks it finds."""
        try:
            regions = self._segmented_regions(samples)
            inputs = self.processor(
                text=texts,
                images=[sample.images for sample in samples],
                videos=[sample.videos for sample in samples],
                regions=regions,
                return_tensors="pt",
                padding=True,
            )
        except PixelReferInputError as error:
            index = error.sample_index
            where = labels[index] if index is not None and index < len(labels) else ", ".join(labels)
            raise ValueError(f"PixelRefer cannot use {where}: {error}") from error
        return inputs.to(self.device)

    def _segmented_regions(self, samples: list[DocumentInputs]) -> list[list[dict[str, Any]]]:
        """The samples' regions; with a segmenter, click / box regions replaced by SAM 2 masks (all in one batch)."""
        regions = [sample.regions for sample in samples]
        if self.segmenter is None:
            return regions
        return self.segmenter.to_masks(
            regions, images=[sample.images for sample in samples], videos=[sample.videos for sample in samples]
        )

    def _first_turn(self, doc: Mapping[str, Any], doc_id: int) -> DocumentInputs:
        return document_inputs(doc, self.variant, doc_id=doc_id)

    def _round_turns(
        self, doc: Mapping[str, Any], doc_id: int, text: str, first_answer: str
    ) -> tuple[list[tuple[str, str]], DocumentInputs]:
        """Turns and inputs of a later round whose user text is `text`.

        `<region>` placeholders in `text` stand for the document's regions (all of them, in order): the round is one
        user turn with the scene and the regions. A text without them refers to regions asked about before, so the
        document's first exchange (its region prompt and the model's first answer) is kept as history.
        """
        text = strip_scene_tags(text)
        if REGION_PLACEHOLDER in text or not doc.get("regions"):
            sample = document_inputs(doc, self.variant, prompt=text, doc_id=doc_id)
            return [("user", sample.prompt)], sample
        sample = self._first_turn(doc, doc_id)
        answer = first_answer
        for placeholder in (IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER, REGION_PLACEHOLDER):
            answer = answer.replace(placeholder, "")
        return [("user", sample.prompt), ("assistant", answer), ("user", text)], sample

    # --- generation ----------------------------------------------------------------------------------------------
    def _generate_kwargs(self, gen_kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """`generate` keyword arguments and stop strings for a task's `generation_kwargs`."""
        gen_kwargs = dict(gen_kwargs or {})
        stop_strings = _as_stop_strings(gen_kwargs.pop("until", None))
        temperature = float(gen_kwargs.pop("temperature", 0.0) or 0.0)
        do_sample = _as_bool(gen_kwargs.pop("do_sample", temperature > 0), "do_sample") and temperature > 0
        max_new_tokens = gen_kwargs.pop("max_new_tokens", None)
        kwargs: dict[str, Any] = {
            "max_new_tokens": _as_int(
                max_new_tokens if max_new_tokens is not None else self.max_new_tokens, "max_new_tokens"
            ),
            "do_sample": do_sample,
            "use_cache": self.use_cache,
        }
        if do_sample:
            kwargs["temperature"] = temperature
        else:  # greedy: clear sampling settings a checkpoint's generation_config may carry
            kwargs.update(temperature=None, top_p=None, top_k=None)
        for key in _GENERATE_KWARGS:
            value = gen_kwargs.pop(key, None)
            if value is not None and (do_sample or key not in ("top_p", "top_k")):
                kwargs[key] = value
        for key in list(gen_kwargs):
            if key not in _IGNORED_GEN_KWARGS and key not in self._warned_gen_kwargs:
                eval_logger.warning(f"PixelRefer: ignoring generation argument {key}={gen_kwargs[key]!r}")
                self._warned_gen_kwargs.add(key)
        if stop_strings:
            kwargs.update(stop_strings=stop_strings, tokenizer=self.tokenizer)
        return kwargs, stop_strings

    def _generate_batch(
        self, texts: list[str], samples: list[DocumentInputs], labels: list[str], gen_kwargs: Mapping[str, Any]
    ) -> list[GenerationResult]:
        """Generate for a batch of chat texts; answers decoded from the new tokens, cut at stop strings, stripped."""
        kwargs, stop_strings = self._generate_kwargs(gen_kwargs)
        inputs = self._encode(texts, samples, labels)
        with torch.inference_mode():
            output = self.model.generate(**inputs, **kwargs)
        prompt_length = inputs["input_ids"].shape[1]
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        pad = self.tokenizer.pad_token_id
        results = []
        for row, new_tokens in enumerate(output[:, prompt_length:].tolist()):
            ends = [position for position, token in enumerate(new_tokens) if token in eos]
            new_tokens = new_tokens[: ends[0] + 1] if ends else new_tokens
            while new_tokens and new_tokens[-1] == pad and pad not in eos:  # a row stopped early by a stop string
                new_tokens.pop()
            text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
            text = truncate_at_stop(text, stop_strings).strip()
            counts = TokenCounts(input_tokens=int(inputs["attention_mask"][row].sum()), output_tokens=len(new_tokens))
            results.append(GenerationResult(text=text, token_counts=counts))
            eval_logger.debug(f"PixelRefer {labels[row]}: {text!r}")
        return results

    def generate_until(self, requests: list[Instance]) -> list[GenerationResult]:
        """Answer each request's region document, batched by identical generation kwargs; results in request order."""
        results: list[GenerationResult] = []
        pbar = tqdm(total=len(requests), disable=(self.rank != 0), desc="PixelRefer responding")
        collator = utils.Collator(
            [self._generation_request(request.args) for request in requests],
            lambda request: request.order,
            group_fn=lambda request: request.gen_kwargs,
            grouping=True,
        )
        for chunk in collator.get_batched(n=self.batch_size, batch_fn=None):
            docs = [self._document(request) for request in chunk]
            samples = [self._first_turn(doc, request.doc_id) for doc, request in zip(docs, chunk, strict=True)]
            texts = [self._chat_text([("user", sample.prompt)]) for sample in samples]
            labels = [request.label(doc) for doc, request in zip(docs, chunk, strict=True)]
            answers = self._generate_batch(texts, samples, labels, chunk[0].gen_kwargs)
            for request, answer in zip(chunk, answers, strict=True):
                self.cache_hook.add_partial("generate_until", (request.ctx, request.gen_kwargs), answer.text)
            results.extend(answers)
            pbar.update(len(chunk))
        pbar.close()
        return collator.get_original(results)

    def generate_until_multi_round(self, requests: list[Instance]) -> list[list[str]]:
        """Multi-round generation following lmms-eval's protocol; one list of round answers per request.

        Round 0 answers the document's region prompt. For each later round the task is asked for the next text
        (`doc_to_text(doc, previous_output=, round_idx=, previous_round_info=)` for simple requests,
        `doc_to_messages(...)` for chat ones) until it signals the end; see `_round_turns` for how regions are kept.
        """
        results: list[list[str]] = []
        pbar = tqdm(total=len(requests), disable=(self.rank != 0), desc="PixelRefer responding (multi-round)")
        collator = utils.Collator(
            [self._multi_round_request(request.args) for request in requests],
            lambda request: request.order,
            group_fn=lambda request: request.gen_kwargs,
            grouping=True,
        )
        for chunk in collator.get_batched(n=self.batch_size, batch_fn=None):
            outputs = self._run_rounds(chunk)
            for request, rounds in zip(chunk, outputs, strict=True):
                self.cache_hook.add_partial("generate_until_multi_round", (request.ctx, request.gen_kwargs), rounds)
            results.extend(outputs)
            pbar.update(len(chunk))
        pbar.close()
        return collator.get_original(results)

    def _run_rounds(self, chunk: list[Request]) -> list[list[str]]:
        """The round answers of each request of a batch; its documents advance round by round together and stop
        independently."""
        docs = [self._document(request) for request in chunk]
        labels = [request.label(doc) for doc, request in zip(docs, chunk, strict=True)]
        outputs: list[list[str]] = [[] for _ in chunk]
        infos: list[Any] = [None] * len(chunk)
        first_answers = [""] * len(chunk)
        active = list(range(len(chunk)))
        for round_idx in range(MAX_ROUNDS):
            texts, samples, asked = [], [], []
            for index in active:
                request, doc = chunk[index], docs[index]
                if round_idx == 0:
                    sample = self._first_turn(doc, request.doc_id)
                    turns = [("user", sample.prompt)]
                else:
                    text, outputs[index], infos[index] = self._next_round(
                        request.next_round, doc, round_idx, outputs[index], infos[index]
                    )
                    if text is None:
                        continue
                    turns, sample = self._round_turns(doc, request.doc_id, text, first_answers[index])
                texts.append(self._chat_text(turns))
                samples.append(sample)
                asked.append(index)
            active = asked
            if not active:
                return outputs
            answers = self._generate_batch(texts, samples, [labels[i] for i in active], chunk[0].gen_kwargs)
            for index, answer in zip(active, answers, strict=True):
                outputs[index] = outputs[index] + [answer.text]
                if round_idx == 0:
                    first_answers[index] = answer.text
        raise RuntimeError(f"multi-round task did not stop after {MAX_ROUNDS} rounds ({labels})")

    # --- log-likelihood ------------------------------------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance]) -> list[LoglikelihoodResult]:
        """Log-probability of each continuation as the assistant's answer to the document's region prompt.

        Requests are `(ctx, continuation or doc_to_target, doc_to_visual, doc_id, task, split)` (`multiple_choice`
        sends one per option). The continuation's leading whitespace (the task's `target_delimiter`) is dropped: the
        answer starts right after `<|im_start|>assistant\\n`. Returns `(logprob, is_greedy)` per request (as
        [`LoglikelihoodResult`] tuples).
        """
        results: list[LoglikelihoodResult] = []
        pbar = tqdm(total=len(requests), disable=(self.rank != 0), desc="PixelRefer log-likelihood")
        collator = utils.Collator(
            [self._loglikelihood_request(request.args) for request in requests],
            lambda request: (*request.order, str(request.target)),
        )
        for chunk in collator.get_batched(n=self.batch_size, batch_fn=None):
            scored = self._score_continuations(chunk)
            for request, result in zip(chunk, scored, strict=True):
                self.cache_hook.add_partial("loglikelihood", (request.ctx, str(request.target)), tuple(result))
            results.extend(scored)
            pbar.update(len(chunk))
        pbar.close()
        return collator.get_original(results)

    def _score_continuations(self, chunk: list[Request]) -> list[LoglikelihoodResult]:
        """`(logprob, is_greedy)` of each request's continuation after its document's region prompt, in one forward
        pass over the batch."""
        docs = [self._document(request) for request in chunk]
        samples = [self._first_turn(doc, request.doc_id) for doc, request in zip(docs, chunk, strict=True)]
        texts = [self._chat_text([("user", sample.prompt)]) for sample in samples]
        labels = [request.label(doc) for doc, request in zip(docs, chunk, strict=True)]
        continuations = [self._continuation_ids(request.target, doc) for doc, request in zip(docs, chunk, strict=True)]
        inputs = self._encode(texts, samples, labels)
        inputs["input_ids"], inputs["attention_mask"] = self._append_continuations(inputs, continuations)
        keep = max(len(continuation) for continuation in continuations) + 1
        with torch.inference_mode():
            logits = self.model(**inputs, logits_to_keep=keep, use_cache=False).logits
        results = []
        for row, continuation in enumerate(continuations):
            count = len(continuation)
            if count == 0:
                results.append(LoglikelihoodResult(0.0, True))
                continue
            scores = logits[row, keep - count - 1 : keep - 1].float().log_softmax(dim=-1)
            target_ids = continuation.to(scores.device)
            logprob = scores.gather(-1, target_ids[:, None]).sum().item()
            results.append(LoglikelihoodResult(logprob, bool((scores.argmax(dim=-1) == target_ids).all())))
        return results

    def _continuation_ids(self, target: Any, doc: Mapping[str, Any]) -> torch.Tensor:
        """Token ids of a request's continuation (`doc_to_target(doc)` when callable; the first of a list), without
        its leading whitespace."""
        continuation = target(doc) if callable(target) else target
        if isinstance(continuation, (list, tuple)):
            continuation = continuation[0]
        ids = self.tokenizer(str(continuation).lstrip(), add_special_tokens=False)["input_ids"]
        return torch.tensor(ids, dtype=torch.long)

    def _append_continuations(
        self, inputs: Mapping[str, torch.Tensor], continuations: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(input_ids, attention_mask)` `(B, L)` of each prompt followed by its continuation, left-padded as the
        processor pads."""
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eot_token_id
        rows = [
            torch.cat([ids[mask.bool()], continuation.to(ids.device)])
            for ids, mask, continuation in zip(
                inputs["input_ids"], inputs["attention_mask"], continuations, strict=True
            )
        ]
        length = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long, device=self.device)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long, device=self.device)
        for index, row in enumerate(rows):
            input_ids[index, length - len(row) :] = row
            attention_mask[index, length - len(row) :] = 1
        return input_ids, attention_mask


class PixelReferChat(PixelReferSimple):
    """PixelRefer for lmms-eval's chat (`ConfigurableMessagesTask`) requests, the default of `--model pixelrefer`.

    Chat requests are `(ctx, doc_to_messages, gen_kwargs, doc_id, task, split)`; the prompt still comes from the region
    document. lmms-eval builds `multiple_choice` / `loglikelihood` tasks only for simple models: run those with
    `--force_simple` ([`PixelReferSimple`]).
    """

    is_simple = False

    def _generation_request(self, args: tuple) -> Request:
        ctx, _doc_to_messages, gen_kwargs, doc_id, task, split = args
        return Request(ctx, doc_id, task, split, gen_kwargs=gen_kwargs)

    def _multi_round_request(self, args: tuple) -> Request:
        ctx, doc_to_messages, gen_kwargs, doc_id, task, split = args
        return Request(ctx, doc_id, task, split, gen_kwargs=gen_kwargs, next_round=doc_to_messages)

    def _next_round(
        self, next_round: Callable, doc: Mapping[str, Any], round_idx: int, outputs: list[str], info: Any
    ) -> tuple[str | None, list[str], Any]:
        """lmms-eval's chat protocol: `doc_to_messages(doc, round_idx=, previous_output=, previous_round_info=)` returns
        `(messages, terminal, previous_output, round_info)`; the text of the last user message is the round's text."""
        payload = next_round(doc, round_idx=round_idx, previous_output=list(outputs), previous_round_info=info)
        if not (isinstance(payload, tuple) and len(payload) == 4):
            return None, outputs, info  # the task has no rounds (as lmms-eval's chat vllm wrapper treats it)
        messages, terminal, _previous_output, info = payload
        if terminal or messages is None:
            return None, outputs, info
        return _last_user_text(messages), outputs, info


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _last_user_text(messages: Any) -> str:
    """Text of the last user message of lmms-eval chat messages (dicts or `ChatMessages`)."""
    messages = _field(messages, "messages") if not isinstance(messages, Sequence) else messages
    for message in reversed(list(messages or [])):
        if _field(message, "role") != "user":
            continue
        content = _field(message, "content")
        if isinstance(content, str):
            return content
        return "".join(_field(item, "text") or "" for item in content or [] if _field(item, "type") == "text")
    raise ValueError(f"the task's messages hold no user message: {messages!r:.200}")


__all__ = ["LoglikelihoodResult", "PixelReferChat", "PixelReferSimple"]
