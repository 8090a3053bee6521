# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer serve` as users run it: one uvicorn process on a free loopback port, the README's `openai` client
example, a client that disconnects mid-stream, and the web page in headless Chromium (Selenium)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from markdown_it import MarkdownIt
from PIL import Image
from random_checkpoints import build_checkpoint
from transformers import AutoModelForImageTextToText, AutoProcessor

from pixelrefer_plugin.describe import describe_prompt
from pixelrefer_plugin.synthetic import make_scene

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "images" / "serve.png"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(build_checkpoint("pixelrefer-tiny", tmp_path_factory.mktemp("serve-process")))


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    """`pixelrefer serve` in a subprocess; its base URL once /health answers."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    command = [sys.executable, "-m", "pixelrefer_plugin.cli", "serve", "--model", checkpoint]
    command += ["--served-model-name", "tiny", "--port", str(port), "--device", "cpu", "--max-batch-size", "4"]
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                pytest.fail(f"pixelrefer serve exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(f"pixelrefer serve did not answer within 60 s:\n{log.read_text()}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    image, _ = make_scene(np.random.default_rng(1), size=(160, 224), num_objects=3)
    path = tmp_path_factory.mktemp("serve-scene") / "scene.png"
    Image.fromarray(image).save(path)
    return path


def reference_answer(checkpoint: str, image, regions: list[dict], question: str, max_tokens: int = 128) -> str:
    """Greedy answer of the checkpoint loaded here, independently of the server."""
    model = AutoModelForImageTextToText.from_pretrained(checkpoint, trust_remote_code=True, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(checkpoint, trust_remote_code=True)
    inputs = processor(text=describe_prompt(processor, question, False), images=image, regions=regions)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
    return processor.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def readme_client_example() -> str:
    blocks = [token.content for token in MarkdownIt("commonmark").parse((ROOT / "README.md").read_text())]
    (example,) = [block for block in blocks if "openai.OpenAI(" in block]
    return example


def test_readme_openai_example_against_the_server(server, checkpoint, scene_file, tmp_path):
    example = readme_client_example()
    assert len(example.strip().splitlines()) <= 6 and "http://127.0.0.1:8000/v1" in example
    shutil.copy(scene_file, tmp_path / "scene.png")
    script = tmp_path / "client.py"
    script.write_text(example.replace("http://127.0.0.1:8000", server))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = reference_answer(checkpoint, str(scene_file), [{"box": [40, 30, 90, 80]}], "What colour is <region>?")
    assert expected and result.stdout.strip() == expected


def image_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def test_client_that_disconnects_mid_stream_frees_its_row(server, scene_file):
    content = [
        {"type": "image_url", "image_url": {"url": image_url(scene_file)}},
        {"type": "text", "text": "<region>"},
    ]
    request = {"messages": [{"role": "user", "content": content}], "regions": [{"box": [0, 0, 50, 50]}]}
    before = httpx.get(server + "/health").json()["engine"]
    with httpx.stream(
        "POST", server + "/v1/chat/completions", json={**request, "stream": True, "max_tokens": 1000}
    ) as r:
        for line in r.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                break  # the first token arrived: leave
    for _ in range(100):
        after = httpx.get(server + "/health").json()
        if after["engine"]["cancelled"] > before["cancelled"]:
            break
        time.sleep(0.1)
    assert after["engine"]["cancelled"] == before["cancelled"] + 1
    answer = httpx.post(server + "/v1/chat/completions", json={**request, "max_tokens": 3}, timeout=60)
    assert answer.status_code == 200 and after["status"] == "ok"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        reason = "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("PIXELREFER_REQUIRE_BROWSER") == "1":  # CI: the browser test must run
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,720"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_web_page_streams_the_greedy_answer(server, browser, scene_file):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    browser.find_element(By.ID, "file").send_keys(str(scene_file))
    wait = WebDriverWait(browser, 60)
    wait.until(lambda driver: driver.find_element(By.ID, "stage").get_attribute("data-ready") == "true")
    canvas = browser.find_element(By.ID, "marks")
    # click at (60, 50) in image pixels: the canvas may be shown scaled
    scale = canvas.size["width"] / 224
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(60 * scale - canvas.size["width"] / 2), int(50 * scale - canvas.size["height"] / 2)
    ).click().perform()
    assert browser.find_element(By.ID, "regions").text == "<region1>"
    question = browser.find_element(By.ID, "question")
    question.clear()
    question.send_keys("What colour is <region1>?")
    browser.find_element(By.ID, "ask").click()
    wait.until(lambda driver: driver.find_element(By.ID, "answer").get_attribute("data-state") in ("done", "error"))
    answer = browser.find_element(By.ID, "answer")
    assert answer.get_attribute("data-state") == "done", answer.text
    streamed = browser.execute_script("return document.getElementById('answer').textContent")

    sent = json.loads(browser.execute_script("return document.getElementById('request').textContent"))
    (region,) = sent["regions"]
    assert abs(region["point"][0] - 60) <= 1 and abs(region["point"][1] - 50) <= 1
    assert sent["messages"][0]["content"][1]["text"] == "What colour is <region>?"
    api = httpx.post(server + "/v1/chat/completions", json=sent, timeout=60)
    assert streamed and streamed == api.json()["choices"][0]["message"]["content"]
    SCREENSHOT.parent.mkdir(exist_ok=True)
    png = browser.get_screenshot_as_png()
    Image.open(io.BytesIO(png)).save(SCREENSHOT)


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--max-batch-size", "0"], "pixelrefer serve: error: --max-batch-size '0': expected a number >= 1"),
        (
            ["--media-root", "/no/such/folder"],
            "pixelrefer serve: error: --media-root '/no/such/folder': no such folder",
        ),
        (["--model", "/no/such/checkpoint"], "pixelrefer serve: error: model: '/no/such/checkpoint' "),
    ],
)
def test_bad_flags_are_one_line_errors(checkpoint, flags, words):
    command = [sys.executable, "-m", "pixelrefer_plugin.cli", "serve", "--model", checkpoint, *flags]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    error = result.stderr.strip()
    assert result.returncode == 2 and "\n" not in error and error.startswith(words), result.stderr


def test_busy_port_is_a_one_line_error(checkpoint):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        command = [sys.executable, "-m", "pixelrefer_plugin.cli", "serve", "--model", checkpoint, "--port", str(port)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == f"pixelrefer serve: error: --port '127.0.0.1:{port}': the port is in use"
