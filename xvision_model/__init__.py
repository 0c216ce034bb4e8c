"""XVision model: Sentinel-2 encoders, the vision adapter and the Qwen2 + LoRA generator."""
