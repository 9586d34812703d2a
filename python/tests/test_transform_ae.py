"""The block-transform autoencoder (dove/transform_ae.py) and the channel-sequence token path with slot
skips (dove/model.py) that the tiny config uses."""
import copy
import math

import pytest
import torch

from dove.config import ConfigError, load_config, validate_config
from dove.model import Dove
from dove.transform_ae import BlockTransformAutoencoder, block_dct_basis, dct_matrix, global_order


def ae_config(channels=64, block=8):
    return {"type": "blocktransform", "block": block, "latent_channels": channels,
            "refine_channels": [8, 16] if block == 8 else [8], "refine_blocks": [1, 1] if block == 8 else [1]}


def test_dct_matrix_is_orthonormal_and_matches_the_textbook_dct():
    d = dct_matrix(8)
    torch.testing.assert_close(d @ d.t(), torch.eye(8, dtype=torch.float64))
    # DCT-II, orthonormal: row 0 constant 1/sqrt(n); row k at sample i: sqrt(2/n) cos(pi (2i+1) k / 2n).
    assert torch.allclose(d[0], torch.full([8], 1 / math.sqrt(8), dtype=torch.float64))
    assert abs(float(d[3, 5]) - math.sqrt(2 / 8) * math.cos(math.pi * 11 * 3 / 16)) < 1e-12


def test_block_basis_rows_are_orthonormal_and_start_with_the_colour_dcs():
    basis = block_dct_basis(8, 192)
    torch.testing.assert_close(basis @ basis.t(), torch.eye(192), atol=1e-5, rtol=0)
    # The three most important coefficients are the block averages of luma, yellow-blue and red-green:
    # constant over the block's 64 pixels within each colour plane (pixel_unshuffle layout c*64 + y*8 + x).
    for row in basis[:3]:
        planes = row.reshape(3, 64)
        assert all(torch.allclose(p, p[0].expand(64), atol=1e-6) for p in planes)
    luma = basis[0].reshape(3, 64)[:, 0]
    torch.testing.assert_close(luma, torch.full([3], 1 / math.sqrt(3) / 8))


def test_global_order_is_a_permutation_sorted_by_expected_variance():
    order, std = global_order(8, 8, 64)
    assert sorted(order.tolist()) == list(range(64 * 64))
    assert (std[:-1] >= std[1:]).all()
    # The first coefficient is the image-wide luma average (block DC, grid DC).
    assert int(order[0]) == 0


def test_fresh_autoencoder_is_the_linear_transform_and_lossless_with_every_coefficient():
    torch.manual_seed(0)
    full = BlockTransformAutoencoder(ae_config(channels=192), 64).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(full(x), x, atol=2e-5, rtol=0)
        z = full.encode(x)
        torch.testing.assert_close(full.to_global(full.to_blocks(z)), z, atol=1e-4, rtol=1e-5)
    assert z.shape == (2, 192, 8, 8)


def test_truncating_latent_channels_truncates_detail():
    torch.manual_seed(0)
    ae = BlockTransformAutoencoder(ae_config(), 64).eval()
    # A smooth image plus fine texture: more kept channels, smaller error, all the way up.
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    smooth = torch.stack([0.3 + 0.4 * xx, 0.5 + 0.2 * torch.sin(6 * yy), 0.2 + 0.5 * xx * yy])
    x = (smooth + 0.05 * torch.sin(40 * xx) * torch.cos(35 * yy)).clamp(0, 1)[None]
    errors = []
    with torch.no_grad():
        z = ae.encode(x)
        for keep in (1, 2, 4, 8, 16, 32, 64):
            zz = z.clone()
            zz[:, keep:] = 0
            errors.append(float((ae.decode(zz) - x).pow(2).mean()))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


def test_fresh_tiny_model_decodes_exactly_its_truncated_latent():
    """slot_skip with zero heads: tokens = latent channels, decoded latent = kept tokens."""
    torch.manual_seed(3)
    model = Dove(load_config("tiny"), "dove").eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        z = model.vqgan.encode(x)
        tokens, _ = model._encode_float(x, 64, None, None)
        torch.testing.assert_close(tokens, z.flatten(2), atol=1e-5, rtol=0)
        for length in (1, 5, 64):
            zz = z.clone()
            zz[:, length:] = 0
            want = model.vqgan.decode(zz).clamp(0, 1)
            got = model.decode(tokens, torch.full([2], length, dtype=torch.int64))
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_mixed_length_sampling_draws_short_lengths_more_often():
    share_one = {}
    for mode in ("uniform", "mixed", "loguniform"):
        cfg = load_config("tiny")
        cfg["loss"]["lengthSampling"] = mode
        validate_config(cfg)
        model = Dove(cfg, "dove")
        torch.manual_seed(0)
        draws = model._random_lengths(100000, torch.device("cpu"))
        assert int(draws.min()) == 1 and int(draws.max()) == 64
        share_one[mode] = float((draws == 1).float().mean())
    # uniform 1/64; log-uniform P(1) = ln 2 / ln 65; mixed: half of each.
    expected = {"uniform": 1 / 64, "loguniform": math.log(2) / math.log(65)}
    expected["mixed"] = (expected["uniform"] + expected["loguniform"]) / 2
    for mode, p in expected.items():
        assert abs(share_one[mode] - p) < 0.006, (mode, share_one[mode], p)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["vqgan"].update(block=6), "power of two"),
    (lambda c: c["vqgan"].update(latent_channels=500), "latent_channels must be between"),
    (lambda c: c["vqgan"].update(refine_channels=[8]), "refine_channels must list 2"),
    (lambda c: c["vqgan"].update(refine_blocks=[1]), "refine_blocks"),
    (lambda c: c["vqgan"].update(type="jpeg"), "vqgan.type"),
    (lambda c: c.update(maxTokens=32), "must equal vqgan.latent_channels"),
    (lambda c: c["transformer"].update(sequence="rows"), "transformer.sequence"),
    (lambda c: c["loss"].update(lengthSampling="gaussian"), "lengthSampling"),
])
def test_invalid_block_transform_configs_are_refused(change, message):
    cfg = load_config("tiny")
    change(cfg)
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)
