"""The one support module of the Python tests (conftest.py only makes it and `dove` importable): the
repository's folders and helpers more than one test uses. torch is imported where it is needed, so the
tests of tools/ and docs do not load it."""
from __future__ import annotations

import os

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(PYTHON_DIR)
TOOLS_DIR = os.path.join(ROOT, "tools")


def perturb_(module: "torch.nn.Module", seed: int, scale: float = 0.05) -> None:
    """Add seeded noise to every parameter so norms and biases are not at their trivial init values."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)


def diffusers_tiny_config() -> dict:
    """The tiny config with a small diffusers-layout VQGAN instead of its block-transform autoencoder:
    for the tests of the VQGAN path (the official configs' layout) at a size that runs in a test."""
    from dove.config import load_config, validate_config

    cfg = load_config("tiny")
    cfg["vqgan"] = {"type": "diffusers", "in_channels": 3, "out_channels": 3, "block_out_channels": [32, 32, 64, 64],
                    "layers_per_block": 1, "latent_channels": 16, "norm_num_groups": 8, "mid_block_add_attention": False}
    cfg["transformer"]["sequence"] = "positions"
    cfg["transformer"]["slot_skip"] = False
    cfg["name"] = "custom"
    validate_config(cfg)
    return cfg
