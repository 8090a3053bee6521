# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""The offline demo (`pixelrefer demo`): `trained` (train, evaluate, control), `picture`, `quickstart`."""

# Training and evaluation use this many torch threads (`pixelrefer demo --threads`) whatever the machine, its load or
# OMP_NUM_THREADS: sums split over another number of threads round differently, so the digits of a run depend on it.
DEMO_TORCH_THREADS = 2
