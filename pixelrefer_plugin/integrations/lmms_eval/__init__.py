"""lmms-eval integration: `--model pixelrefer` and region-level tasks."""
