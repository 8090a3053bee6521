# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer_plugin.serving` in process (httpx's ASGI client): every region kind, DAM's RGBA convention, streaming,
batching equivalence, the same-image cache, every class of bad request, a timeout and a client that disconnects.

Reference answers come from `generate()` on a second copy of the model, one request at a time."""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import json

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from random_checkpoints import build_checkpoint
from transformers import AutoModelForImageTextToText, AutoProcessor

from pixelrefer_plugin.describe import describe_prompt
from pixelrefer_plugin.serving import EngineSettings, RequestLimits, ServerSettings, create_app
from pixelrefer_plugin.serving.media import MediaLimits
from pixelrefer_plugin.synthetic import make_scene

MAX_TOKENS = 8


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(build_checkpoint("pixelrefer-tiny", tmp_path_factory.mktemp("serve-tiny")))


@functools.cache
def loaded(path: str):
    model = AutoModelForImageTextToText.from_pretrained(path, trust_remote_code=True, dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(path, trust_remote_code=True)


def reference_answer(path: str, image: np.ndarray, regions: list[dict], question: str, max_tokens=MAX_TOKENS) -> str:
    """Greedy answer of a model copy the server never touches, for one request."""
    model, processor = _reference_model(path)
    inputs = processor(text=describe_prompt(processor, question, False), images=image, regions=regions)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
    return processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


@functools.cache
def _reference_model(path: str):
    model = AutoModelForImageTextToText.from_pretrained(path, trust_remote_code=True, dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(path, trust_remote_code=True)


@pytest.fixture(scope="module")
def scene():
    return make_scene(np.random.default_rng(1), size=(160, 224), num_objects=3)


@pytest.fixture(scope="module")
def other_scene():
    return make_scene(np.random.default_rng(2), size=(128, 128), num_objects=2)


def data_url(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def body(image_url: str, question: str, regions: list | None = None, **fields) -> dict:
    content = [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": question}]
    request = {"messages": [{"role": "user", "content": content}], "max_tokens": MAX_TOKENS, **fields}
    if regions is not None:
        request["regions"] = regions
    return request


@pytest.fixture
def make_app(checkpoint):
    """`make_app(**settings)`: a server app on the shared model (a fresh feature cache each time)."""
    apps = []

    def make(engine: EngineSettings | None = None, **settings):
        model, processor = loaded(checkpoint)
        model.model.__dict__.pop("encode_packed", None)  # the previous app's cache hook
        app = create_app(
            model, processor, ServerSettings(model_id="tiny", engine=engine or EngineSettings(), **settings)
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.engine.stop()
    loaded(checkpoint)[0].model.__dict__.pop("encode_packed", None)


def call(app, *requests: dict, path: str = "/v1/chat/completions") -> list[httpx.Response]:
    """POST the requests concurrently; the responses in order."""

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
            return await asyncio.gather(*(client.post(path, json=request) for request in requests))

    return asyncio.run(run())


def content(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def rle_of(mask: np.ndarray) -> dict:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode()}


def region_pair(kind: str, obj) -> tuple[dict, dict]:
    """(the region as a request sends it, the same region as the processor takes it)."""
    x0, y0, x1, y1 = obj.box
    if kind == "mask_png":
        return {"mask": data_url(obj.mask.astype(np.uint8) * 255)}, {"mask": obj.mask}
    if kind == "mask_list":
        return {"mask": obj.mask.astype(int).tolist()}, {"mask": obj.mask}
    if kind == "rle":
        return {"rle": rle_of(obj.mask)}, {"rle": rle_of(obj.mask)}
    if kind == "polygon":
        ring = [x0, y0, x1, y0, x1, y1, x0, y1]
        return {"polygon": [ring]}, {"polygon": [ring]}
    if kind == "box":
        return {"box": [x0, y0, x1, y1]}, {"box": [x0, y0, x1, y1]}
    point = [(x0 + x1) // 2, (y0 + y1) // 2]
    return {"point": point}, {"point": point}


@pytest.mark.parametrize("kind", ["mask_png", "mask_list", "rle", "polygon", "box", "point"])
def test_each_region_kind_gets_the_greedy_answer(make_app, checkpoint, scene, kind):
    image, objects = scene
    sent, expected = region_pair(kind, objects[1])
    response = call(make_app(), body(data_url(image), "What is <region>?", [sent]))[0]
    answer = content(response)
    assert answer and answer == reference_answer(checkpoint, image, [expected], "What is <region>?")
    assert response.json()["usage"]["completion_tokens"] <= MAX_TOKENS


def test_rgba_alpha_channel_is_the_region(make_app, checkpoint, scene):
    image, objects = scene
    rgba = np.dstack([image, np.where(objects[0].mask, 255, 0).astype(np.uint8)])
    answer = content(call(make_app(), body(data_url(rgba), "Describe <region>."))[0])
    assert answer == reference_answer(checkpoint, image, [{"mask": objects[0].mask}], "Describe <region>.")
    # an opaque RGBA image is a plain image: its region comes from `regions`
    opaque = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    box = list(objects[2].box)
    answer = content(call(make_app(), body(data_url(opaque), "Describe <region>.", [{"box": box}]))[0])
    assert answer == reference_answer(checkpoint, image, [{"box": box}], "Describe <region>.")


def sse_events(text: str) -> list:
    lines = [line.removeprefix("data: ") for line in text.split("\n\n") if line.strip()]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def test_stream_gives_the_same_answer_in_chunks(make_app, scene):
    image, objects = scene
    request = body(data_url(image), "What is <region>?", [{"box": list(objects[0].box)}], max_tokens=12)
    app = make_app()
    plain, streamed = call(app, request, {**request, "stream": True, "stream_options": {"include_usage": True}})
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    events = sse_events(streamed.text)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [event["choices"][0]["delta"].get("content", "") for event in events[1:-2]]
    assert len(deltas) > 1 and "".join(deltas) == content(plain)
    assert events[-2]["choices"][0]["finish_reason"] == plain.json()["choices"][0]["finish_reason"] == "length"
    assert events[-1]["choices"] == [] and events[-1]["usage"] == plain.json()["usage"]


def test_stop_string_ends_the_answer_before_it(make_app, checkpoint, scene):
    image, objects = scene
    region = {"box": list(objects[0].box)}
    full = reference_answer(checkpoint, image, [region], "What is <region>?")
    stop = full.split()[1]  # a word the greedy answer holds
    answer = content(call(make_app(), body(data_url(image), "What is <region>?", [region], stop=[stop]))[0])
    assert answer == full[: full.index(stop)].strip()


def test_concurrent_requests_are_batched_and_answer_as_one_by_one(make_app, checkpoint, scene, other_scene):
    questions = ["What is <region>?", "Describe <region> in detail.", "Compare <region> and <region>."]
    requests, expected = [], []
    for index in range(6):
        image, objects = (scene, other_scene)[index % 2]
        question = questions[index % 3]
        regions = [{"box": list(objects[index % 2].box)}] + ([{"mask": objects[-1].mask}] if "and" in question else [])
        sent = [dict(r, mask=data_url(r["mask"].astype(np.uint8) * 255)) if "mask" in r else r for r in regions]
        requests.append(body(data_url(image), question, sent, max_tokens=4 + index))
        expected.append(reference_answer(checkpoint, image, regions, question, 4 + index))
    app = make_app(EngineSettings(max_batch_size=8, batch_wait=0.5))
    answers = [content(response) for response in call(app, *requests)]
    assert answers == expected
    stats = app.state.engine.stats
    assert stats.batches == 1 and stats.largest_batch == 6
    assert app.state.cache.stats.prefix_misses == 0  # two images: no prefix shared by every row, the plain batch ran


def vision_encoder_calls(checkpoint) -> list[int]:
    """Patches the vision encoder reads, one entry per forward pass (a hook on the module itself)."""
    model = loaded(checkpoint)[0]
    calls: list[int] = []
    handle = model.model.vision_model.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(int(kwargs["grid_thw"].prod(dim=1).sum())), with_kwargs=True
    )
    return calls, handle


def language_model_reads(checkpoint) -> list[tuple[int, int]]:
    """`(rows, tokens)` the language model reads, one entry per forward pass (a hook on the module itself)."""
    model = loaded(checkpoint)[0]
    reads: list[tuple[int, int]] = []
    handle = model.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: reads.append(tuple(kwargs["inputs_embeds"].shape[:2])), with_kwargs=True
    )
    return reads, handle


def scene_and_crop_patches(checkpoint, image, region: dict) -> tuple[int, int]:
    inputs = loaded(checkpoint)[1](text="<image><region>", images=image, regions=[region])
    return int(inputs["image_grid_thw"].prod()), int(inputs["region_grid_thw"].prod())


def test_second_question_about_an_image_skips_the_vision_encoder(make_app, checkpoint, scene):
    image, objects = scene
    box, point = {"box": list(objects[0].box)}, {"point": [5, 5]}
    scene_patches, box_patches = scene_and_crop_patches(checkpoint, image, box)
    app = make_app()
    calls, handle = vision_encoder_calls(checkpoint)
    try:
        url = data_url(image)
        first = content(call(app, body(url, "What is <region>?", [box]))[0])
        assert calls == [scene_patches, box_patches]  # the scene with the prompt prefix, then the crop
        second = content(call(app, body(url, "Describe <region> in detail.", [box]))[0])
        assert len(calls) == 2  # nothing encoded: image and crop came from the cache
        third = content(call(app, body(url, "What is <region>?", [point]))[0])
    finally:
        handle.remove()
    assert calls[2:] == [scene_and_crop_patches(checkpoint, image, point)[1]]  # a new region: only its crop
    assert first == reference_answer(checkpoint, image, [box], "What is <region>?")
    assert second == reference_answer(checkpoint, image, [box], "Describe <region> in detail.")
    assert third == reference_answer(checkpoint, image, [point], "What is <region>?")
    cache = call_get(app, "/health")["cache"]
    assert (cache["misses"], cache["hits"], cache["encoded_images"]) == (3, 1, 3)  # scene, box crop, point crop


def test_second_question_about_an_image_skips_its_preprocessing(make_app, checkpoint, scene):
    image, objects = scene
    app = make_app()
    url = data_url(image)
    regions = [[{"box": list(objects[0].box)}], [{"box": list(objects[1].box)}]]
    call(app, body(url, "What is <region>?", regions[0]))
    stats = app.state.cache.stats
    assert (stats.patch_misses, stats.patch_hits, stats.preprocessed_images) == (2, 0, 2)  # scene, crop
    answer = content(call(app, body(url, "What is <region>?", regions[1]))[0])
    assert (stats.patch_misses, stats.patch_hits, stats.preprocessed_images) == (3, 1, 3)  # only the new crop
    assert answer == reference_answer(checkpoint, image, regions[1], "What is <region>?")


def test_batch_about_one_image_preprocesses_it_once(make_app, checkpoint, scene):
    image, objects = scene
    app = make_app(EngineSettings(max_batch_size=8, batch_wait=0.5))
    url = data_url(image)
    regions = [[{"box": list(obj.box)}] for obj in objects]
    answers = [content(r) for r in call(app, *(body(url, "What is <region>?", region) for region in regions))]
    assert app.state.engine.stats.largest_batch == len(objects)
    assert app.state.cache.stats.preprocessed_images == 1 + len(objects)  # the scene once, each crop
    assert answers == [reference_answer(checkpoint, image, region, "What is <region>?") for region in regions]


def test_rows_about_one_image_read_its_prompt_prefix_once(make_app, checkpoint, scene):
    image, objects = scene
    questions = ["What is <region>?", "Describe <region> in detail.", "Where is <region>?"]
    regions = [[{"box": list(obj.box)}] for obj in objects]
    expected = [reference_answer(checkpoint, image, r, q) for r, q in zip(regions, questions, strict=True)]
    processor = loaded(checkpoint)[1]
    lengths = [
        processor(text=describe_prompt(processor, q, False), images=image, regions=r)["input_ids"].shape[1]
        for r, q in zip(regions, questions, strict=True)
    ]
    app = make_app(EngineSettings(max_batch_size=8, batch_wait=0.5))
    url = data_url(image)
    reads, handle = language_model_reads(checkpoint)
    try:
        answers = [content(r) for r in call(app, *(body(url, q, r) for r, q in zip(regions, questions, strict=True)))]
        prefix = app.state.cache.stats.prefix_tokens
        (rows, prefix_read), (_, rest_read) = reads[:2]
        assert (rows, prefix_read) == (1, prefix)  # the shared prefix once, for one row
        assert rest_read == max(lengths) - prefix  # then each row from where the prefix ends
        assert prefix > int(processor(text="<image>", images=image)["image_grid_thw"].prod())  # the scene's tokens
        del reads[:]
        again = content(call(app, body(url, "What colour is <region>?", regions[0]))[0])
    finally:
        handle.remove()
    assert answers == expected
    stats = app.state.cache.stats
    assert (stats.prefix_misses, stats.prefix_hits) == (1, 1)
    question = describe_prompt(processor, "What colour is <region>?", False)
    length = processor(text=question, images=image, regions=regions[0])["input_ids"].shape[1]
    assert reads[0] == (1, length - prefix)  # another question later: its prefix comes from the cache
    assert again == reference_answer(checkpoint, image, regions[0], "What colour is <region>?")


def test_cache_is_bounded_in_bytes(make_app, scene):
    image, objects = scene
    app = make_app(cache_bytes=30_000)  # one scene image's features (~39 KB) do not fit, a crop's do
    call(app, body(data_url(image), "What is <region>?", [{"box": list(objects[0].box)}]))
    cache = app.state.cache
    assert 0 < cache.bytes <= 30_000 and len(cache) == 1


def call_get(app, path: str) -> dict:
    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return (await client.get(path)).json()

    return asyncio.run(run())


def test_models_and_health(make_app):
    app = make_app()
    assert call_get(app, "/v1/models")["data"][0]["id"] == "tiny"
    health = call_get(app, "/health")
    assert health["status"] == "ok" and health["variant"] == "full"


def post_raw(app, data: bytes, headers: dict | None = None) -> httpx.Response:
    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.post("/v1/chat/completions", content=data, headers=headers or {})

    return asyncio.run(run())


BAD_REQUESTS = {
    # name: (change to a good request, status, param, words of the message)
    "unknown field": (lambda r: {**r, "temprature": 0.5}, 400, "temprature", "unknown field"),
    "box outside the image": (lambda r: {**r, "regions": [{"box": [0, 0, 999, 10]}]}, 400, "regions[0]", "outside"),
    "unknown region key": (lambda r: {**r, "regions": [{"bbox": [0, 0, 9, 9]}]}, 400, "regions[0]", "bbox"),
    "empty mask": (lambda r: {**r, "regions": [{"mask": [[0] * 224] * 160}]}, 400, "regions[0]", "no pixel"),
    "too few placeholders": (lambda r: {**r, "regions": r["regions"] * 2}, 400, "messages", "placeholder"),
    "bad base64": (
        lambda r: body("data:image/png;base64,@@@not-base64", "What is <region>?", r["regions"]),
        400,
        "messages[0].content[0].image_url",
        "base64",
    ),
    "not an image": (
        lambda r: body("data:image/png;base64," + base64.b64encode(b"hello").decode(), "<region>?", r["regions"]),
        400,
        "messages[0].content[0].image_url",
        "cannot read",
    ),
    "bad mask data URL": (
        lambda r: {**r, "regions": [{"mask": "data:image/png;base64,%%"}]},
        400,
        "regions[0].mask",
        "base64",
    ),
    "remote URL": (
        lambda r: body("https://example.com/cat.png", "What is <region>?", r["regions"]),
        400,
        "messages[0].content[0].image_url",
        "remote",
    ),
    "local path without a media folder": (
        lambda r: body("/etc/passwd", "What is <region>?", r["regions"]),
        400,
        "messages[0].content[0].image_url",
        "--media-root",
    ),
    "other model": (lambda r: {**r, "model": "gpt-4o"}, 400, "model", "tiny"),
    "max_tokens over the limit": (lambda r: {**r, "max_tokens": 5000}, 400, "max_tokens", "limit"),
    "image over the pixel limit": (
        lambda r: body(data_url(np.zeros((600, 600, 3), np.uint8)), "What is <region>?", [{"box": [0, 0, 9, 9]}]),
        413,
        "messages[0].content[0].image_url",
        "at most",
    ),
    "messages missing": (lambda r: {"regions": r["regions"]}, 422, "messages", "required"),
    "max_tokens of the wrong type": (lambda r: {**r, "max_tokens": "many"}, 422, "max_tokens", "integer"),
    "unknown content part": (
        lambda r: {**r, "messages": [{"role": "user", "content": [{"type": "audio", "audio": "x"}]}]},
        422,
        "messages[0].content[0]",
        "",
    ),
    "temperature out of range": (lambda r: {**r, "temperature": 3}, 422, "temperature", "2"),
}


def test_every_bad_request_gets_its_status_and_the_worker_lives(make_app, scene):
    image, objects = scene
    good = body(data_url(image), "What is <region>?", [{"box": list(objects[0].box)}])
    app = make_app(limits=RequestLimits(media=MediaLimits(max_image_pixels=300 * 300)))
    requests = [change(good) for change, *_ in BAD_REQUESTS.values()]
    responses = call(app, *requests, good)
    for name, response in zip(BAD_REQUESTS, responses, strict=False):
        _, status, param, words = BAD_REQUESTS[name]
        error = response.json()["error"]
        assert response.status_code == status, (name, response.text)
        assert error["param"] == param and words in error["message"], (name, error)
        assert error["type"] and error["message"].startswith(param), (name, error)
    assert content(responses[-1])  # the good request in the same batch is answered
    assert call_get(app, "/health")["status"] == "ok"


def test_body_over_the_limit_and_invalid_json(make_app):
    app = make_app(max_body_bytes=1000)
    response = post_raw(app, b"{" + b" " * 2000 + b"}")
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
    response = post_raw(app, b"{not json")
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]


def test_request_over_the_timeout_is_cancelled(make_app, scene):
    image, objects = scene
    app = make_app(EngineSettings(batch_wait=0.2, request_timeout=0.05))
    response = call(app, body(data_url(image), "What is <region>?", [{"box": list(objects[0].box)}]))[0]
    assert response.status_code == 408 and response.json()["error"]["code"] == "timeout"
    stats = call_get(app, "/health")
    assert stats["status"] == "ok" and stats["engine"]["timed_out"] == 1 and stats["engine"]["batches"] == 0


def test_client_disconnect_frees_its_row_and_the_other_stream_finishes(make_app, checkpoint, scene):
    """Drives the ASGI app as a server does: the first client disconnects after its first answer chunk."""
    image, objects = scene
    app = make_app(EngineSettings(max_batch_size=2, batch_wait=0.5))
    leaving = body(data_url(image), "Describe <region> in detail.", [{"box": list(objects[0].box)}])
    staying = body(data_url(image), "What is <region>?", [{"box": list(objects[1].box)}], max_tokens=40)

    async def leave_after_first_chunk():
        got_chunk = asyncio.Event()
        sent = []
        payload = json.dumps({**leaving, "stream": True, "max_tokens": 400}).encode()
        messages = [{"type": "http.request", "body": payload, "more_body": False}]

        async def receive():
            if messages:
                return messages.pop()
            await got_chunk.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)
            if message["type"] == "http.response.body" and b'"content": "' in message.get("body", b"")[:400]:
                if b'"content": ""' not in message["body"]:
                    got_chunk.set()

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            "client": ("127.0.0.1", 1), "server": ("test", 80), "root_path": "",
        }  # fmt: skip
        await app(scope, receive, send)
        return sent

    async def both():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
            return await asyncio.gather(leave_after_first_chunk(), client.post("/v1/chat/completions", json=staying))

    sent, other = asyncio.run(both())
    body_text = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()
    assert sent[0]["status"] == 200 and "[DONE]" not in body_text
    assert content(other) == reference_answer(
        checkpoint, image, [{"box": list(objects[1].box)}], "What is <region>?", 40
    )
    stats = app.state.engine.stats
    assert stats.cancelled == 1 and stats.batches == 1 and stats.largest_batch == 2


def test_segmenter_turns_a_click_into_its_mask(checkpoint, scene, tmp_path):
    from pixelrefer_plugin.segmentation import RegionSegmenter
    from pixelrefer_plugin.segmentation.tiny import build_tiny_sam2

    segmenter = RegionSegmenter.from_pretrained(build_tiny_sam2(tmp_path / "sam2"), device="cpu")
    image, objects = scene
    x0, y0, x1, y1 = objects[0].box
    click = {"point": [(x0 + x1) // 2, (y0 + y1) // 2]}
    (expected_region,) = segmenter.to_masks([click], images=[image])
    model, processor = loaded(checkpoint)
    model.model.__dict__.pop("encode_packed", None)
    app = create_app(model, processor, ServerSettings(model_id="tiny"), segmenter)
    try:
        assert call_get(app, "/health")["segmenter"] is True
        answer = content(call(app, body(data_url(image), "What is <region>?", [click]))[0])
    finally:
        app.state.engine.stop()
        model.model.__dict__.pop("encode_packed", None)
    mask_only = {"mask": expected_region["mask"]}
    assert answer == reference_answer(checkpoint, image, [mask_only], "What is <region>?")
    assert answer != reference_answer(checkpoint, image, [click], "What is <region>?")
