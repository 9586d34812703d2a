"""ONNX exports of fixed-budget encode and decode (for benchmarking against onnxruntime); not a
runtime format of this project. Float32 NCHW images in [0,1]; dynamic batch; K fixed at export time."""
import os
from typing import List, Tuple

import torch
from torch import nn

from .model import Dove


class EncodeFixed(nn.Module):
    def __init__(self, model: Dove, max_tokens: int):
        super().__init__()
        self.model = model
        self.max_tokens = max_tokens

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        latents = self.model.vqgan.encode(images)
        return self.model._generate(latents, self.max_tokens, None, None)


class DecodeFixed(nn.Module):
    """decode() without its argument checks (they read tensor values, which an exported graph cannot):
    the model's own decode computation, so the ONNX graph cannot drift from the TorchScript one."""

    def __init__(self, model: Dove):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.vqgan.decode(m._latents_from_tokens(tokens, lengths)).clamp(0.0, 1.0)


def export_onnx(model: Dove, prefix: str, max_tokens: int = 0, opset: int = 17) -> List[str]:
    """Write <prefix>.encode.onnx and <prefix>.decode.onnx; K = max_tokens (default: the model's max)."""
    if model.is_qdove:
        raise ValueError("ONNX export covers DOVE only (Q-DOVE queries are not part of the fixed graph)")
    k = max_tokens or model.max_tokens
    model = model.eval()
    size = model.image_size
    os.makedirs(os.path.dirname(os.path.abspath(prefix)) or ".", exist_ok=True)
    enc_path, dec_path = f"{prefix}.encode.onnx", f"{prefix}.decode.onnx"
    images = torch.rand(1, 3, size, size)
    tokens = torch.randn(1, k, model.token_dim)
    lengths = torch.tensor([k], dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            EncodeFixed(model, k), (images,), enc_path, dynamo=False, opset_version=opset,
            input_names=["images"], output_names=["tokens", "eos_logits"],
            dynamic_axes={"images": {0: "batch"}, "tokens": {0: "batch"}, "eos_logits": {0: "batch"}},
        )
        torch.onnx.export(
            DecodeFixed(model), (tokens, lengths), dec_path, dynamo=False, opset_version=opset,
            input_names=["tokens", "lengths"], output_names=["images"],
            dynamic_axes={"tokens": {0: "batch"}, "lengths": {0: "batch"}, "images": {0: "batch"}},
        )
    return [enc_path, dec_path]
