"""Trainer fixtures: very small seeded DOVE / Q-DOVE exports and image folders for the Trainer's tests
(test/trainer) and benchmarks, written into test/fixtures/generated/train/ by scripts/setup.

The models are real DOVE exports (python/dove/model.py) at a size a 2-core CPU trains in seconds:
32x32 images, 16 tokens. `train-mini-det` turns the stochastic parts of the loss off (always train at
the predicted length, no EOS term) so that its gradient is a plain mean over samples: 2 processes
with half a batch each must then match 1 process with the whole batch.
"""
import json
import os
from typing import Any, Dict

import numpy as np
from PIL import Image

from dove.config import clone, load_config, validate_config
from dove.export import build_model, dove_json, save_scripted

MINI: Dict[str, Any] = {
    "name": "custom",
    "imageSize": 32,
    "maxTokens": 16,
    "tokenDim": 32,
    "eosThreshold": 0.5,
    "vqgan": {
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": [16, 16, 32, 32],
        "layers_per_block": 1,
        "latent_channels": 8,
        "norm_num_groups": 8,
        "mid_block_add_attention": False,
    },
    "transformer": {
        "hidden_size": 64,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "generator_layers": 2,
        "decoder_layers": 2,
        "rotary_pct": 0.25,
        "rotary_emb_base": 10000,
        "layer_norm_eps": 1e-05,
        "use_parallel_residual": True,
        "vocab_size": 512,
    },
    "query": {"maxLength": 16},
    "loss": {"eosWeight": 0.1, "eosWindow": 2, "predictedLengthProb": 0.5, "lengthPenalty": 0.0,
             "irrelevantWeight": 0.1},
}


def _export(cfg: Dict[str, Any], variant: str, seed: int, path: str) -> None:
    cfg = clone(cfg)
    validate_config(cfg)
    model, cfg, tok = build_model(cfg, variant, seed)
    save_scripted(model, path, dove_json(cfg, variant, seed, tok), tok)


def _images(out: str) -> Dict[str, Any]:
    """Flat-colour and noisy images (different sizes, so crops really resize), one unreadable file."""
    rng = np.random.default_rng(7)
    os.makedirs(out, exist_ok=True)
    names = []
    for i in range(8):
        colour = rng.integers(0, 256, size=3, dtype=np.uint8)
        w, h = 40 + 4 * i, 36 + 2 * i
        Image.fromarray(np.broadcast_to(colour, (h, w, 3)).copy()).save(os.path.join(out, f"flat_{i}.png"))
        names.append(f"flat_{i}.png")
    for i in range(8):
        w, h = 44 + 2 * i, 40 + 4 * i
        noise = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        # JPEG for half of them: the pipeline must not care about the extension.
        ext = "jpg" if i % 2 else "png"
        Image.fromarray(noise).save(os.path.join(out, f"noisy_{i}.{ext}"), quality=95)
        names.append(f"noisy_{i}.{ext}")
    return {"flat": [n for n in names if n.startswith("flat")], "noisy": [n for n in names if n.startswith("noisy")]}


def _annotations(images_dir: str, out_file: str) -> None:
    """Q-DOVE annotations in the original's format: image_id (file stem), question, answer|null, boxes."""
    entries = []
    stems = sorted(os.path.splitext(n)[0] for n in os.listdir(images_dir))
    for i, stem in enumerate(stems):
        with Image.open(next(os.path.join(images_dir, n) for n in os.listdir(images_dir) if n.startswith(stem + "."))) as im:
            w, h = im.size
        entries.append({
            "image_id": stem,
            "question": "what colour is the top left corner?" if i % 2 == 0 else "is there noise on the right?",
            "answer": None if i % 3 == 0 else "yes",
            "bounding_box": [[0, 0, w // 2, h // 2]] if i % 2 == 0 else [[w // 2, 0, w - w // 2, h], [0, h - 4, 4, 4]],
        })
    with open(out_file, "w", encoding="utf-8") as f:
        json.dump(entries, f, indent=1)


def generate(out_dir: str) -> None:
    out = os.path.join(out_dir, "train")
    os.makedirs(out, exist_ok=True)
    _export(MINI, "dove", 11, os.path.join(out, "train-mini.pt"))
    det = clone(MINI)
    det["loss"].update({"eosWeight": 0.0, "predictedLengthProb": 1.0})
    _export(det, "dove", 12, os.path.join(out, "train-mini-det.pt"))
    _export(MINI, "qdove", 13, os.path.join(out, "train-mini-qdove.pt"))
    groups = _images(os.path.join(out, "images"))
    _annotations(os.path.join(out, "images"), os.path.join(out, "annotations.json"))
    manifest = {
        "models": {"dove": "train-mini.pt", "deterministic": "train-mini-det.pt", "qdove": "train-mini-qdove.pt"},
        "images": "images",
        "groups": groups,
        "annotations": "annotations.json",
        "tiny": load_config("tiny")["name"],
    }
    with open(os.path.join(out, "train-fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
