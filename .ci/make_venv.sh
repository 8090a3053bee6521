#!/usr/bin/env bash
# Creates $VENV with the package and every extra that installs on this machine.
#
# LOCK=auto (default): exactly the versions of requirements/cpu.lock (requirements/gpu.lock where nvidia-smi sees a
# GPU), hash-checked, nothing resolved. LOCK=none: the newest versions pyproject.toml allows (`make test-latest`),
# upgrading a venv that exists; torch stays the build of the CPU lock on a CPU machine, so that nothing swaps it
# for a multi-GB CUDA build, and the CUDA-only torchvision that lmms-eval pulls in is removed again.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
LOCK=${LOCK:-auto}

has_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then has_gpu=1; fi
if [ "$LOCK" = auto ]; then
    LOCK=requirements/cpu.lock
    if [ "$has_gpu" = 1 ]; then LOCK=requirements/gpu.lock; fi
fi

"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# deepspeed is an sdist: build it without compiling ops (they are JIT-built on first use).
export DS_BUILD_OPS=0

if [ "$LOCK" != none ]; then
    echo "$VENV: installing the $(grep -c '==' "$LOCK") packages of $LOCK (a minute or two; pip is quiet)"
    "${PIP[@]}" install -q --require-hashes --no-deps -r "$LOCK"
    # A venv made before holds exactly the lock afterwards: what the lock does not name is removed.
    extra=$("$VENV/bin/python" - "$LOCK" <<'PY'
import importlib.metadata, re, sys
normalise = lambda name: re.sub(r"[-_.]+", "-", name).lower()
locked = {normalise(n) for n in re.findall(r"^([A-Za-z0-9_.\-]+)==", open(sys.argv[1]).read(), flags=re.M)}
installed = {normalise(d.metadata["Name"]) for d in importlib.metadata.distributions() if d.metadata["Name"]}
print(" ".join(sorted(installed - locked - {"pixelrefer-plugin"})))
PY
)
    if [ -n "$extra" ]; then "${PIP[@]}" uninstall -q -y $extra; fi
    echo "$VENV: installing pixelrefer-plugin from this folder (editable)"
    "${PIP[@]}" install -q --no-deps --no-build-isolation -e .
    # The lock must be complete: the only requirement it may leave out is the CPU set's torchvision (pip also
    # calls decord's manylinux2010 wheel unsupported, though it imports and runs).
    problems=$("${PIP[@]}" check 2>&1 | grep -v -e "requires torchvision, which is not installed" \
        -e "^decord .* is not supported on this platform" || true)
    if [ -n "$problems" ]; then
        printf '%s does not hold everything it installs needs:\n%s\n' "$LOCK" "$problems" >&2
        exit 1
    fi
else
    cpu_torch=$(grep -o '^torch==[^ ]*' requirements/cpu-overrides.txt)
    constraints="$VENV/constraints.txt"
    if [ "$has_gpu" = 1 ]; then : > "$constraints"; else echo "$cpu_torch" > "$constraints"; fi
    echo "$VENV: resolving and installing the newest versions pyproject.toml allows (a few minutes; pip is quiet)"
    "${PIP[@]}" install -q --upgrade pip
    "${PIP[@]}" install -q --upgrade --upgrade-strategy eager -c "$constraints" -e ".[all,dev]"
    if [ "$has_gpu" = 0 ]; then "${PIP[@]}" uninstall -q -y torchvision >/dev/null 2>&1 || true; fi
fi
"$VENV/bin/python" -c 'import sys, torch, transformers
print(f"{sys.prefix}: torch {torch.__version__}, transformers {transformers.__version__}")'
