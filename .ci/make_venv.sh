#!/usr/bin/env bash
# Creates $VENV with the package and every extra that installs on this machine.
#
# On a CPU machine torch is pinned to the local CPU build (TORCH_VERSION) through a constraints file, so that
# nothing installed later (lmms-eval, sentence-transformers, deepspeed, ...) swaps it for a multi-GB CUDA build.
# lmms-eval drags in a CUDA-only torchvision that cannot be imported next to a CPU torch: it is removed again.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip

has_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then has_gpu=1; fi

if [ "$has_gpu" = 1 ]; then
    "${PIP[@]}" install -q "torch"
else
    "${PIP[@]}" install -q "torch==${TORCH_VERSION}"
fi
installed_torch=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')
constraints="$VENV/constraints.txt"
printf 'torch==%s\n' "$installed_torch" > "$constraints"

# deepspeed is an sdist: build it without compiling ops (they are JIT-built on first use).
DS_BUILD_OPS=0 "${PIP[@]}" install -q -c "$constraints" -e ".[all,dev]"

if [ "$has_gpu" = 0 ]; then
    "${PIP[@]}" uninstall -q -y torchvision >/dev/null 2>&1 || true
fi
"$VENV/bin/python" -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}")'
