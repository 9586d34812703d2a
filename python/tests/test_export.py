"""The exporter CLI: TorchScript file with dove.json (and tokenizer.json for Q-DOVE) per
docs/MODEL_FORMAT.md, checkpoints, errors, ONNX side exports."""
import json

import numpy as np
import onnxruntime as ort
import torch
from tokenizers import Tokenizer

from dove.export import FORMAT, FORMAT_VERSION, main
from dove.model import Dove
from dove.config import load_config
from dove.tokenizer import encode_queries

METHODS = ("encode", "select_lengths", "decode", "encode_pixels", "decode_pixels", "forward")


def load(path, names=("dove.json",)):
    extra = {n: "" for n in names}
    module = torch.jit.load(str(path), _extra_files=extra)
    return module, extra


def test_export_tiny_dove(tmp_path, capsys):
    out = tmp_path / "tiny.pt"
    assert main(["--config", "tiny", "--seed", "3", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    module, extra = load(out)
    meta = json.loads(extra["dove.json"])
    assert meta["format"] == FORMAT and meta["formatVersion"] == FORMAT_VERSION == 1
    assert meta["variant"] == "dove" and meta["configName"] == "tiny"
    tiny = load_config("tiny")
    assert (meta["imageSize"], meta["maxTokens"], meta["tokenDim"]) == (tiny["imageSize"], tiny["maxTokens"], tiny["tokenDim"])
    assert meta["eosThreshold"] == 0.5 and meta["normalization"] == "rgb01"
    assert meta["queryTokenizer"] is None and meta["training"] is None
    assert meta["exporter"]["seed"] == 3 and meta["exporter"]["torch"] == torch.__version__.split("+")[0]
    assert meta["config"] == load_config("tiny")
    for name in METHODS:
        assert hasattr(module, name), name
    # Same seed, same weights.
    torch.manual_seed(3)
    eager = Dove(load_config("tiny"), "dove")
    for k, v in eager.state_dict().items():
        assert torch.equal(module.state_dict()[k], v), k


def test_export_qdove_embeds_tokenizer(tmp_path):
    out = tmp_path / "q.pt"
    assert main(["--config", "tiny", "--variant", "qdove", "-o", str(out)]) == 0
    module, extra = load(out, ("dove.json", "tokenizer.json"))
    meta = json.loads(extra["dove.json"])
    assert meta["variant"] == "qdove"
    assert meta["queryTokenizer"] == {"file": "tokenizer.json", "maxLength": 64, "padId": 1}
    tok = extra["tokenizer.json"].decode("utf-8")
    # The embedded tokenizer is a byte-level BPE with GPT-NeoX's special ids that loads in Hugging Face's
    # `tokenizers` and gives any text back from its ids.
    hf = Tokenizer.from_str(tok)
    assert hf.get_vocab_size(with_added_tokens=True) == 4096
    assert (hf.token_to_id("<|endoftext|>"), hf.token_to_id("<|padding|>")) == (0, 1)
    text = "A red ball, 3 cafés & naïve ünïcode: 東京!"
    assert hf.decode(hf.encode(text).ids) == text
    queries = ["a red ball on the grass", "sky"]
    ids, mask = encode_queries(tok, queries, 64, 1)
    for row, query in enumerate(queries):
        n = int(mask[row].sum())
        assert mask[row].tolist() == [1] * n + [0] * (ids.shape[1] - n)  # a prefix of real tokens
        assert ids[row, n:].tolist() == [1] * (ids.shape[1] - n)  # then padding
        assert hf.decode(ids[row, :n].tolist()) == query
    assert int(mask[0].sum()) == ids.shape[1] > int(mask[1].sum())
    # Exporting again trains the same tokenizer (the corpus is read in a fixed order).
    again = tmp_path / "q2.pt"
    assert main(["--config", "tiny", "--variant", "qdove", "-o", str(again)]) == 0
    assert load(again, ("dove.json", "tokenizer.json"))[1]["tokenizer.json"].decode("utf-8") == tok
    with torch.no_grad():
        tokens, logits = module.encode(torch.zeros(2, 64, 64, 3, dtype=torch.uint8), 8, ids, mask)
    assert tokens.shape == (2, 8, load_config("tiny")["tokenDim"]) and logits.shape == (2, 8)


def test_given_tokenizer_grows_own_embedding(tmp_path):
    from tokenizers import models

    vocab = {f"t{i}": i for i in range(5000)}
    vocab.update({"<|endoftext|>": 5000, "<|padding|>": 5001})
    tok_path = tmp_path / "tokenizer.json"
    tok_path.write_text(Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>")).to_str())
    out = tmp_path / "q.pt"
    assert main(["--config", "tiny", "--variant", "qdove", "--tokenizer", str(tok_path), "-o", str(out)]) == 0
    module, extra = load(out, ("dove.json", "tokenizer.json"))
    meta = json.loads(extra["dove.json"])
    assert meta["config"]["transformer"]["vocab_size"] == 5120
    assert meta["queryTokenizer"]["padId"] == 5001
    assert module.query_embed.weight.shape == (5120, load_config("tiny")["transformer"]["hidden_size"])


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(99)
    trained = Dove(load_config("tiny"), "dove")
    ckpt = tmp_path / "weights.pt"
    torch.save({"state_dict": trained.state_dict()}, ckpt)
    out = tmp_path / "from-ckpt.pt"
    assert main(["--config", "tiny", "--checkpoint", str(ckpt), "-o", str(out)]) == 0
    module, _ = load(out)
    for k, v in trained.state_dict().items():
        assert torch.equal(module.state_dict()[k], v), k
    # A DOVE export is itself a valid checkpoint (what the Trainer saves).
    again = tmp_path / "again.pt"
    assert main(["--config", "tiny", "--checkpoint", str(out), "-o", str(again)]) == 0
    assert torch.equal(load(again)[0].eos_head.weight, trained.eos_head.weight)


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["--config", "no-such-config", "-o", str(tmp_path / "x.pt")]) == 1
    assert "Unknown config" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    torch.save({"eos_head.weight": torch.zeros(3)}, bad)
    assert main(["--config", "tiny", "--checkpoint", str(bad), "-o", str(tmp_path / "y.pt")]) == 1
    err = capsys.readouterr().err
    assert "missing keys" in err and f"eos_head.weight: checkpoint [3] vs model [1, {load_config('tiny')['transformer']['hidden_size']}]" in err
    assert main(["--config", "tiny", "--vqgan", str(tmp_path), "-o", str(tmp_path / "z.pt")]) == 1
    assert "no config.json" in capsys.readouterr().err
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert main(["--config", "tiny", "--variant", "qdove", "--tokenizer", str(junk), "-o", str(tmp_path / "q.pt")]) == 1
    assert "is not a Hugging Face tokenizer.json" in capsys.readouterr().err
    assert main(["--config", "tiny", "--variant", "qdove", "--pythia", str(tmp_path), "-o", str(tmp_path / "q.pt")]) == 1
    assert "needs the GPT-NeoX tokenizer" in capsys.readouterr().err


def test_onnx_side_export_matches_torchscript(tmp_path):
    out = tmp_path / "tiny.pt"
    assert main(["--config", "tiny", "--onnx", str(tmp_path / "tiny"), "-o", str(out)]) == 0
    module, _ = load(out)
    enc = ort.InferenceSession(str(tmp_path / "tiny.encode.onnx"))
    dec = ort.InferenceSession(str(tmp_path / "tiny.decode.onnx"))
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    tokens, logits = enc.run(None, {"images": x})
    lengths = np.array([5, 64], dtype=np.int64)
    images = dec.run(None, {"tokens": tokens, "lengths": lengths})[0]
    with torch.no_grad():
        t, l = module.encode(torch.from_numpy(x), 64)
        img = module.decode(t, torch.from_numpy(lengths))
    np.testing.assert_allclose(tokens, t.numpy(), atol=1e-4)
    np.testing.assert_allclose(logits, l.numpy(), atol=1e-4)
    np.testing.assert_allclose(images, img.numpy(), atol=1e-4)
