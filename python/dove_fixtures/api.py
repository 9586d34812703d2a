"""Fixtures for the TypeScript API tests (test/api): reference outputs of Python libraries that the
Node side must reproduce exactly.

- api/bpe_<name>.json: byte-level BPE tokenizer.json files trained with HF `tokenizers` (seeded corpus),
  in the GPT-NeoX style (NFC, ByteLevel without prefix space, ByteLevel post-processor) and a variant
  with a prefix space and a BOS/EOS TemplateProcessing post-processor.
- api/bpe_reference.json: {tokenizer name: [[text, ids], ...]} from `Tokenizer.encode(text).ids`.
- api/python_written.safetensors + api/python_written.json: tensors of several dtypes written by
  Python's `safetensors`, and their values as JSON, for the Node reader.
- api/not_dove_*.pt: TorchScript files that are not valid DOVE exports (no dove.json, another format
  version, methods missing), for the model-file validation errors.
"""
import json
import os
import random

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

WORDS = (
    "the a cat dog sits on mat what colour is red blue green car house tree sky people walking street "
    "left right top bottom how many are there is this photo of café naïve über straße 東京 猫 🐈 "
    "don't it's we're they've I'm you'll he'd 2024 3.14 1,000 #hashtag @user e-mail x+y=z"
).split()

TEXTS = [
    "What colour is the cat?",
    "how many people are walking on the street",
    "  leading and trailing spaces  ",
    "multiple   spaces\tand\ttabs\nand\nnewlines",
    "don't it's we're they've I'm you'll he'd DON'T",
    "numbers 12345 and 3.14159 and 1,000,000",
    "unicode: café naïve über straße 東京の猫 🐈‍⬛ emoji 👍🏽",
    "combining e\u0301 vs \u00e9 (NFC)",
    "<|endoftext|>special<|padding|> tokens<|endoftext|>",
    "unseen words: xylophone quixotic zzzz",
    "",
    " ",
    "a",
]


def _corpus(seed: int) -> list:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))) for _ in range(3000)]


def _train(name: str, prefix_space: bool, template: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>", "<|padding|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(0 if name == "neox" else 1), trainer)
    if template:
        eot = tok.token_to_id("<|endoftext|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|endoftext|> $A <|endoftext|>", special_tokens=[("<|endoftext|>", eot)]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def generate(out_dir: str) -> None:
    api = os.path.join(out_dir, "api")
    os.makedirs(api, exist_ok=True)

    reference = {}
    for name, prefix_space, template in (("neox", False, False), ("prefix_template", True, True)):
        tok = _train(name, prefix_space, template)
        tok.save(os.path.join(api, f"bpe_{name}.json"))
        reference[name] = [[t, tok.encode(t).ids] for t in TEXTS]
    with open(os.path.join(api, "bpe_reference.json"), "w", encoding="utf-8") as f:
        json.dump(reference, f, ensure_ascii=False)

    rng = np.random.default_rng(0)
    tensors = {
        "f32": rng.standard_normal((3, 5, 7)).astype(np.float32),
        "f64": rng.standard_normal((4,)).astype(np.float64),
        "i64": rng.integers(-(2**40), 2**40, size=(2, 3)).astype(np.int64),
        "i32": rng.integers(-1000, 1000, size=(5,)).astype(np.int32),
        "u8": rng.integers(0, 256, size=(2, 2, 3)).astype(np.uint8),
        "scalar": np.array(1.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    save_file(tensors, os.path.join(api, "python_written.safetensors"), metadata={"writer": "python", "n": "7"})
    values = {k: {"shape": list(v.shape), "values": [str(x) if v.dtype == np.int64 else float(x) for x in v.reshape(-1)]} for k, v in tensors.items()}
    with open(os.path.join(api, "python_written.json"), "w", encoding="utf-8") as f:
        json.dump(values, f)

    _not_dove_modules(api)


def _not_dove_modules(api: str) -> None:
    import torch

    class Plain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1

    class HalfDove(torch.nn.Module):
        @torch.jit.export
        def encode(self, images: torch.Tensor, max_tokens: int):
            return images, images

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    meta = {"format": "dove-encoder/model", "formatVersion": 1, "variant": "dove", "configName": "custom", "config": {},
            "imageSize": 8, "maxTokens": 4, "tokenDim": 4, "eosThreshold": 0.5, "normalization": "rgb01",
            "queryTokenizer": None}
    torch.jit.save(torch.jit.script(Plain()), os.path.join(api, "not_dove_no_json.pt"))
    torch.jit.save(torch.jit.script(Plain()), os.path.join(api, "not_dove_version.pt"),
                   _extra_files={"dove.json": json.dumps({**meta, "formatVersion": 2})})
    torch.jit.save(torch.jit.script(HalfDove()), os.path.join(api, "not_dove_methods.pt"),
                   _extra_files={"dove.json": json.dumps(meta)})
