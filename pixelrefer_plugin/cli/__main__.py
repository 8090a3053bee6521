# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`python -m pixelrefer_plugin.cli ...` runs the `pixelrefer` command."""

import sys

from . import main

sys.exit(main())
