# Set-up and the two everyday commands. `make demo` and `make test` create the virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test demo lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml .ci/make_venv.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash .ci/make_venv.sh
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest tests -q

demo: $(STAMP)
	$(BIN)/pixelrefer demo

lint: $(STAMP)
	$(BIN)/ruff check pixelrefer_plugin tests benchmarks
	$(BIN)/ruff format --check pixelrefer_plugin tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/object_tokenizer.py
	$(BIN)/python benchmarks/generate.py
	$(BIN)/python benchmarks/full_vs_lite.py

clean:
	rm -rf $(VENV) build *.egg-info
