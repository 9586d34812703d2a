"""Model fixtures: seeded DOVE exports plus Python's outputs on fixed inputs, for the Node parity tests,
and broken files for the loader's error tests. Written into test/fixtures/generated/ by scripts/setup.

Per model <name>.pt: <name>.parity.safetensors (inputs and Python outputs) and <name>.parity.json
(which method was called with which arguments; tensor arguments/outputs name safetensors keys).
"""
import json
import os
from typing import Any, Dict, List, Optional

import torch

from dove.config import load_config
from dove.export import build_model, dove_json
from dove.tokenizer import encode_queries

PARITY_TOLERANCE = 1e-5

MODELS = [
    # name, config, variant, seed, batch, full (every method; the 256px official model only checks
    # encode and decode because each of its calls costs seconds on CPU)
    ("tiny-dove", "tiny", "dove", 0, 2, True),
    ("tiny-qdove", "tiny", "qdove", 1, 2, True),
    ("official-14m", "official-14m", "dove", 2, 1, False),
]


def _save_pt(scripted: torch.jit.ScriptModule, path: str, extra: Dict[str, str]) -> None:
    torch.jit.save(scripted, path, _extra_files=extra)


def _parity(name: str, scripted: torch.jit.ScriptModule, meta: Dict[str, Any], batch: int,
            tokenizer_json: Optional[str], out_dir: str, full: bool) -> None:
    size = meta["imageSize"]
    k_max = meta["maxTokens"]
    gen = torch.Generator().manual_seed(1234)
    pixels = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=gen)
    tensors: Dict[str, torch.Tensor] = {"input.pixels": pixels}
    query_args: Dict[str, Optional[str]] = {"query_ids": None, "query_mask": None}
    extra: Dict[str, Any] = {}
    qids: Optional[torch.Tensor] = None
    qmask: Optional[torch.Tensor] = None
    if meta["variant"] == "qdove":
        queries = ["Where is the red ball?", "the sky"][:batch]
        qids, qmask = encode_queries(tokenizer_json, queries, meta["queryTokenizer"]["maxLength"],
                                     meta["queryTokenizer"]["padId"])
        tensors["input.query_ids"] = qids
        tensors["input.query_mask"] = qmask
        query_args = {"query_ids": "input.query_ids", "query_mask": "input.query_mask"}
        extra["queries"] = queries
    calls: List[Dict[str, Any]] = []
    budget = max(1, k_max // 4)
    with torch.no_grad():
        tokens, eos_logits = scripted.encode(pixels, k_max, qids, qmask)
        tensors["encode.tokens"], tensors["encode.eos_logits"] = tokens, eos_logits
        calls.append({"method": "encode", "args": {"images": "input.pixels", "max_tokens": k_max, **query_args},
                      "outputs": ["encode.tokens", "encode.eos_logits"]})
        lengths = torch.tensor([3, k_max, 1, k_max // 2][:batch], dtype=torch.int64)
        tensors["decode.lengths"] = lengths
        tensors["decode.images"] = scripted.decode(tokens, lengths)
        calls.append({"method": "decode", "args": {"tokens": "encode.tokens", "lengths": "decode.lengths"},
                      "outputs": ["decode.images"]})
    if not full:
        _write_parity(name, tensors, calls, out_dir, extra)
        return
    # A random-init EOS head is nearly flat: take the threshold from its own probabilities (90th
    # percentile) so auto/capped lengths land at varied, non-trivial positions.
    threshold = round(float(torch.quantile(torch.sigmoid(eos_logits).flatten(), 0.9)), 6)
    with torch.no_grad():
        t_b, l_b = scripted.encode(pixels, budget, qids, qmask)
        tensors["encode_budget.tokens"], tensors["encode_budget.eos_logits"] = t_b, l_b
        calls.append({"method": "encode", "args": {"images": "input.pixels", "max_tokens": budget, **query_args},
                      "outputs": ["encode_budget.tokens", "encode_budget.eos_logits"]})
        for mode, mode_budget in (("auto", k_max), ("fixed", budget), ("capped", budget)):
            t, p, lens = scripted.encode_pixels(pixels, mode, mode_budget, threshold, qids, qmask)
            key = f"encode_pixels_{mode}"
            tensors[f"{key}.tokens"], tensors[f"{key}.eos_probs"], tensors[f"{key}.lengths"] = t, p, lens
            calls.append({"method": "encode_pixels",
                          "args": {"images": "input.pixels", "mode": mode, "budget": mode_budget,
                                   "threshold": threshold, **query_args},
                          "outputs": [f"{key}.tokens", f"{key}.eos_probs", f"{key}.lengths"]})
        tensors["decode_pixels.pixels"] = scripted.decode_pixels(tokens, lengths)
        calls.append({"method": "decode_pixels", "args": {"tokens": "encode.tokens", "lengths": "decode.lengths"},
                      "outputs": ["decode_pixels.pixels"]})
        short_lengths = torch.clamp(lengths, max=budget)
        tensors["decode_budget.lengths"] = short_lengths
        tensors["decode_budget.images"] = scripted.decode(t_b, short_lengths)
        calls.append({"method": "decode", "args": {"tokens": "encode_budget.tokens", "lengths": "decode_budget.lengths"},
                      "outputs": ["decode_budget.images"]})
    _write_parity(name, tensors, calls, out_dir, extra)


def _write_parity(name: str, tensors: Dict[str, torch.Tensor], calls: List[Dict[str, Any]], out_dir: str,
                  extra: Dict[str, Any]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, f"{name}.parity.safetensors"))
    sidecar = {
        "model": f"{name}.pt",
        "tensors": f"{name}.parity.safetensors",
        "tolerance": PARITY_TOLERANCE,
        "uint8Tolerance": 1,
        "note": "Tensor-valued args and outputs name keys in the safetensors file; other args are literals. "
                "uint8 outputs may differ by 1 where a value sits on a rounding boundary.",
        "calls": calls,
        **extra,
    }
    with open(os.path.join(out_dir, f"{name}.parity.json"), "w", encoding="utf-8") as f:
        json.dump(sidecar, f, indent=2)


def _like_trained(model: torch.nn.Module, seed: int) -> None:
    """Fixtures stand in for trained models. A fresh tiny model starts with zero-initialised heads (its
    slot skips make the token path an identity until the first update), which would hide the query and the
    transformers from every test: give each all-zero parameter small seeded weights, as training would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.02)


class _NotDove(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0


def generate(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    manifest: Dict[str, Any] = {"models": {}, "broken": {}}
    tiny_scripted = None
    tiny_meta = None
    for name, config, variant, seed, batch, full in MODELS:
        model, cfg, tok = build_model(load_config(config), variant, seed)
        _like_trained(model, seed)
        meta = dove_json(cfg, variant, seed, tok)
        scripted = torch.jit.script(model)
        extra = {"dove.json": json.dumps(meta, indent=2)}
        if tok is not None:
            extra["tokenizer.json"] = tok
        _save_pt(scripted, os.path.join(out_dir, f"{name}.pt"), extra)
        _parity(name, scripted, meta, batch, tok, out_dir, full)
        manifest["models"][name] = {"file": f"{name}.pt", "config": config, "variant": variant, "seed": seed,
                                    "parity": f"{name}.parity.json"}
        if name == "tiny-dove":
            tiny_scripted, tiny_meta = scripted, meta

    assert tiny_scripted is not None and tiny_meta is not None
    not_dove = torch.jit.script(_NotDove())
    _save_pt(not_dove, os.path.join(out_dir, "not-dove.pt"), {})
    manifest["broken"]["not-dove.pt"] = "TorchScript, but not a DOVE export (no DOVE methods, no dove.json)"
    _save_pt(not_dove, os.path.join(out_dir, "not-dove-with-json.pt"), {"dove.json": json.dumps(tiny_meta)})
    manifest["broken"]["not-dove-with-json.pt"] = "valid dove.json, but the module lacks encode/decode/..."
    _save_pt(tiny_scripted, os.path.join(out_dir, "no-dove-json.pt"), {})
    manifest["broken"]["no-dove-json.pt"] = "a DOVE module saved without dove.json"
    v99 = dict(tiny_meta, formatVersion=99)
    _save_pt(tiny_scripted, os.path.join(out_dir, "format-v99.pt"), {"dove.json": json.dumps(v99)})
    manifest["broken"]["format-v99.pt"] = "a DOVE module whose dove.json has formatVersion 99"
    with open(os.path.join(out_dir, "not-torchscript.pt"), "wb") as f:
        f.write(b"this is not a TorchScript archive\n" * 8)
    manifest["broken"]["not-torchscript.pt"] = "not a TorchScript archive at all"
    with open(os.path.join(out_dir, "model-fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
