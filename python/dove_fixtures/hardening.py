"""Fixtures for the input-hardening tests (test/hardening): DOVE-shaped exports that break the
method contract of docs/MODEL_FORMAT.md in one way each, so that the runtime's checks of what a
model returns can be tested end to end.

- hardening/bad_output_<kind>.pt: imageSize 8, maxTokens 4, tokenDim 4; `encode_pixels` /
  `decode_pixels` return, by kind: lengths_zero (0), lengths_over (budget + 1), lengths_negative (-3),
  lengths_huge (2**62), tokens_float64, tokens_dim (tokenDim + 1), pixels_shape ((B,S,S) instead of
  (B,S,S,3)); `good` follows the contract (the control).
"""
import json
import os

KINDS = ["good", "lengths_zero", "lengths_over", "lengths_negative", "lengths_huge", "tokens_float64", "tokens_dim", "pixels_shape"]

META = {"format": "dove-encoder/model", "formatVersion": 1, "variant": "dove", "configName": "custom", "config": {},
        "imageSize": 8, "maxTokens": 4, "tokenDim": 4, "eosThreshold": 0.5, "normalization": "rgb01",
        "queryTokenizer": None}


def generate(out_dir: str) -> None:
    from typing import Dict, Optional, Tuple

    import torch

    class BadOutput(torch.nn.Module):
        def __init__(self, kind: int, size: int, dim: int):
            super().__init__()
            self.kind = kind
            self.size = size
            self.dim = dim

        @torch.jit.export
        def encode(self, images: torch.Tensor, max_tokens: int, query_ids: Optional[torch.Tensor] = None,
                   query_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
            b = images.shape[0]
            return torch.zeros(b, max_tokens, self.dim), torch.zeros(b, max_tokens)

        @torch.jit.export
        def select_lengths(self, eos_logits: torch.Tensor, mode: str, budget: int, threshold: float) -> torch.Tensor:
            return torch.full([eos_logits.shape[0]], budget, dtype=torch.int64)

        @torch.jit.export
        def decode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return torch.zeros(tokens.shape[0], 3, self.size, self.size)

        @torch.jit.export
        def encode_pixels(self, images: torch.Tensor, mode: str, budget: int, threshold: float,
                          query_ids: Optional[torch.Tensor] = None, query_mask: Optional[torch.Tensor] = None
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            b = images.shape[0]
            tokens = torch.zeros(b, budget, self.dim)
            probs = torch.zeros(b, budget)
            lengths = torch.full([b], budget, dtype=torch.int64)
            if self.kind == 1:
                lengths = torch.zeros([b], dtype=torch.int64)
            elif self.kind == 2:
                lengths = torch.full([b], budget + 1, dtype=torch.int64)
            elif self.kind == 3:
                lengths = torch.full([b], -3, dtype=torch.int64)
            elif self.kind == 4:
                lengths = torch.full([b], 2 ** 62, dtype=torch.int64)
            elif self.kind == 5:
                tokens = torch.zeros(b, budget, self.dim, dtype=torch.float64)
            elif self.kind == 6:
                tokens = torch.zeros(b, budget, self.dim + 1)
            return tokens, probs, lengths

        @torch.jit.export
        def decode_pixels(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            if self.kind == 7:
                return torch.zeros(tokens.shape[0], self.size, self.size, dtype=torch.uint8)
            return torch.zeros(tokens.shape[0], self.size, self.size, 3, dtype=torch.uint8)

        def forward(self, images: torch.Tensor, region_mask: Optional[torch.Tensor] = None,
                    query_ids: Optional[torch.Tensor] = None, query_mask: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
            return {"loss": images.float().mean()}

    folder = os.path.join(out_dir, "hardening")
    os.makedirs(folder, exist_ok=True)
    module = torch.jit.script(BadOutput(0, META["imageSize"], META["tokenDim"]))  # scripted once: seconds each
    for i, kind in enumerate(KINDS):
        module.kind = i
        torch.jit.save(module, os.path.join(folder, f"bad_output_{kind}.pt"), _extra_files={"dove.json": json.dumps(META)})
