# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""Surfaces that let code written for other multimodal codebases drive PixelRefer models."""
