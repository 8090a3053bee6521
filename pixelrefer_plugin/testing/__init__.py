# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Reference implementations used as ground truth by the tests and the benchmarks (not used by the model)."""
