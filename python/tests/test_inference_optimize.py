"""The inference-only form the Node runtime loads by default (`optimize`, native/module_optimize.cpp;
dove.export.optimize_for_inference is its Python twin): every export must freeze, keep its public
methods and their contracts, and give the file's own outputs within float32 rounding."""
import pytest
import torch

from dove.export import main, optimize_for_inference
from dove.tokenizer import encode_queries, train_bpe

PUBLIC = ("encode", "select_lengths", "decode", "encode_pixels", "decode_pixels", "forward")
# channels_last convolutions round differently from NCHW ones; docs/API.md states this bound (measured
# max 1.6e-6 on tiny exports, 6.5e-5 on official-14m decode images).
FLOAT_TOLERANCE = 1e-4


@pytest.fixture(scope="module", params=["dove", "qdove"])
def export(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("opt") / f"tiny-{request.param}.pt"
    assert main(["--config", "tiny", "--variant", request.param, "--seed", "5", "-o", str(out)]) == 0
    return request.param, str(out)


def inputs(variant):
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(2, 64, 64, 3, generator=g) * 255).to(torch.uint8)
    if variant != "qdove":
        return images, None, None
    ids, mask = encode_queries(train_bpe(vocab_size=4096), ["a red square", "sky"], 64, 1)
    return images, ids, mask


def test_freezes_and_keeps_public_methods(export):
    variant, path = export
    opt = optimize_for_inference(torch.jit.load(path))
    assert len(list(opt.parameters())) == 0, "weights are graph constants"
    for name in PUBLIC:
        assert name in opt._c._method_names(), name


def test_outputs_match_the_file_within_float32_rounding(export):
    variant, path = export
    plain = torch.jit.load(path).eval()
    opt = optimize_for_inference(torch.jit.load(path))
    images, ids, mask = inputs(variant)
    with torch.inference_mode():
        for k in (64, 16):
            a, b = plain.encode(images, k, ids, mask), opt.encode(images, k, ids, mask)
            for x, y in zip(a, b):
                assert (x - y).abs().max().item() <= FLOAT_TOLERANCE
        tokens, _ = plain.encode(images, 64, ids, mask)
        lengths = torch.tensor([64, 7])
        assert (plain.decode(tokens, lengths) - opt.decode(tokens, lengths)).abs().max().item() <= FLOAT_TOLERANCE
        px = (plain.decode_pixels(tokens, lengths).int() - opt.decode_pixels(tokens, lengths).int()).abs().max().item()
        assert px <= 1
        t1, p1, l1 = plain.encode_pixels(images, "fixed", 12, 0.5, ids, mask)
        t2, p2, l2 = opt.encode_pixels(images, "fixed", 12, 0.5, ids, mask)
        assert torch.equal(l1, l2) and (t1 - t2).abs().max().item() <= FLOAT_TOLERANCE


def test_freezing_alone_is_bit_exact(export):
    # Freezing without the channels_last weights changes no rounding: the frozen-graph passes used
    # (optimize_numerics=False) fold no arithmetic that would.
    variant, path = export
    plain = torch.jit.load(path).eval()
    frozen = torch.jit.freeze(torch.jit.load(path).eval(), preserved_attrs=["encode", "decode"], optimize_numerics=False)
    images, ids, mask = inputs(variant)
    with torch.inference_mode():
        for x, y in zip(plain.encode(images, 64, ids, mask), frozen.encode(images, 64, ids, mask)):
            assert torch.equal(x, y)
        tokens, _ = plain.encode(images, 64, ids, mask)
        lengths = torch.tensor([64, 3])
        assert torch.equal(plain.decode(tokens, lengths), frozen.decode(tokens, lengths))


def test_causality_contract_holds_on_the_optimised_module(export):
    # docs/MODEL_FORMAT.md: encode(x, K) is bit for bit the first K slots of encode(x, maxTokens).
    variant, path = export
    opt = optimize_for_inference(torch.jit.load(path))
    images, ids, mask = inputs(variant)
    with torch.inference_mode():
        full_t, full_e = opt.encode(images, 64, ids, mask)
        for k in (1, 9, 33):
            t, e = opt.encode(images, k, ids, mask)
            assert torch.equal(t, full_t[:, :k]) and torch.equal(e, full_e[:, :k])
