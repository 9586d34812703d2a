"""Q-DOVE query tokenizer: the GPT-NeoX (Pythia) tokenizer.json when the user gives one, otherwise a small
byte-level BPE trained here, deterministically, on license texts every Debian system ships."""
import glob
import json
import os
from typing import List, Optional, Tuple

SPECIAL_TOKENS = ["<|endoftext|>", "<|padding|>"]  # the same ids (0, 1) as the GPT-NeoX tokenizer
DEFAULT_CORPUS_GLOBS = ["/usr/share/common-licenses/*"]


def corpus_files(globs: Optional[List[str]] = None) -> List[str]:
    seen = set()
    files: List[str] = []
    for pattern in globs or DEFAULT_CORPUS_GLOBS:
        for path in sorted(glob.glob(pattern)):
            real = os.path.realpath(path)
            if os.path.isfile(real) and real not in seen:
                seen.add(real)
                files.append(real)
    return sorted(files)


def train_bpe(vocab_size: int = 4096, globs: Optional[List[str]] = None) -> str:
    """-> tokenizer.json text. Same files in the same order give the same tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    files = corpus_files(globs)
    if not files:
        raise RuntimeError(
            "No text found to train the query tokenizer on (looked in "
            + ", ".join(globs or DEFAULT_CORPUS_GLOBS) + "); pass --tokenizer tokenizer.json"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = []
    for path in files:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            texts.append(f.read())
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok.to_str()


def tokenizer_info(tokenizer_json: str) -> Tuple[int, int]:
    """-> (vocab size incl. added tokens, pad id)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    size = tok.get_vocab_size(with_added_tokens=True)
    pad = tok.token_to_id("<|padding|>")
    if pad is None:
        pad = tok.token_to_id("<|endoftext|>")
    return size, 0 if pad is None else int(pad)


def encode_queries(tokenizer_json: str, queries: List[str], max_length: int, pad_id: int):
    """-> (ids int64 (B,T), mask int64 (B,T)) padded to the longest query, truncated to max_length."""
    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    encoded = [tok.encode(q).ids[:max_length] for q in queries]
    width = max(1, max(len(e) for e in encoded))
    ids = torch.full((len(queries), width), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(queries), width), dtype=torch.int64)
    for i, e in enumerate(encoded):
        ids[i, : len(e)] = torch.tensor(e, dtype=torch.int64)
        mask[i, : len(e)] = 1
    return ids, mask


def read_tokenizer(path: str) -> str:
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    json.loads(text)  # fail early on something that is not JSON
    return text
