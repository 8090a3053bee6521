# Copyright 2026 The pixelrefer-plugin authors. Licensed under the Apache License, Version 2.0.
"""`pixelrefer serve`: an OpenAI-compatible HTTP API with batching and a same-image cache, and its web page.

```python no-run
from pixelrefer_plugin.describe import load_model, load_processor
from pixelrefer_plugin.serving import ServerSettings, create_app

app = create_app(load_model("DIR"), load_processor("DIR"), ServerSettings(model_id="DIR"))
```

Needs the `serve` extra (FastAPI, uvicorn). See docs/serving.md.
"""

from .app import ServerSettings, create_app
from .engine import EngineSettings
from .protocol import RequestLimits

__all__ = ["EngineSettings", "RequestLimits", "ServerSettings", "create_app"]
