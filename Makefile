# Set-up and the two everyday commands. `make demo` and `make test` create the virtualenv on first use, from the lock.
#
# The lock (requirements/cpu.lock, requirements/gpu.lock) pins every package `make venv` installs, with hashes, so a
# clone installs the tested set on any day. `make lock` rewrites it from pyproject.toml with uv, which resolves for
# another platform than its own (the GPU set is locked on a CPU machine) and writes hashes, where pip-tools follows
# pip's internals and breaks with pip releases; pip installs the result, so users need no uv. `make test-latest`
# tests the newest versions pyproject.toml allows, in a second virtualenv, unlocked.
PYTHON ?= python3
VENV ?= .venv
LATEST_VENV ?= .venv-latest
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The tests that exercise upstream APIs (transformers, peft, accelerate, lmms-eval, PyAV, FastAPI): modeling,
# processor, export and loading, released checkpoints loaded natively, SAM 2, Lite, video, the lmms-eval model,
# training smoke runs, the server.
LATEST_TESTS := tests/test_modeling.py tests/test_processor.py tests/test_export.py tests/test_hub_loading.py \
	tests/test_segmentation.py tests/test_lite.py tests/test_video.py tests/test_lmms_eval_model.py \
	tests/test_training.py tests/test_serve.py tests/test_install.py

.PHONY: venv test test-latest demo lock lint bench clean

venv: $(STAMP)

$(STAMP): requirements/cpu.lock requirements/gpu.lock pyproject.toml .ci/make_venv.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash .ci/make_venv.sh
	touch $(STAMP)

# The web page's tests drive Debian's headless Chromium; as root (CI) it is installed, else those tests skip.
test: $(STAMP)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and chromium-driver for the web page tests"; \
		apt-get install -y -qq chromium chromium-driver >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }; \
	else echo "chromium / chromedriver missing and not root: the web page tests will be skipped"; fi
	$(BIN)/python -m pytest tests -q

test-latest:
	PYTHON=$(PYTHON) VENV=$(LATEST_VENV) LOCK=none bash .ci/make_venv.sh
	$(LATEST_VENV)/bin/python -m pip list --format=freeze --disable-pip-version-check > $(LATEST_VENV)/versions.txt
	PIXELREFER_UNLOCKED=1 $(LATEST_VENV)/bin/python -m pytest $(LATEST_TESTS) -q

demo: $(STAMP)
	$(BIN)/pixelrefer demo

lock:
	bash .ci/lock.sh

lint: $(STAMP)
	$(BIN)/ruff check pixelrefer_plugin tests benchmarks
	$(BIN)/ruff format --check pixelrefer_plugin tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/object_tokenizer.py
	$(BIN)/python benchmarks/generate.py
	$(BIN)/python benchmarks/full_vs_lite.py

clean:
	rm -rf $(VENV) $(LATEST_VENV) .venv-tools build *.egg-info
