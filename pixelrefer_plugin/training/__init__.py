"""Fine-tuning PixelRefer: data, LoRA, training entry."""
