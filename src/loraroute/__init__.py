"""loraroute: train, verify and serve the LoRA models an LLM request router needs."""

__version__ = "0.1.0"
