"""Our VQGAN against diffusers' VQModel (aMUSEd VQ-VAE config, random weights), imported through the
same code path as `python -m dove.export --vqgan DIR`."""
import json
import os

import diffusers
import pytest
import torch

from dove.config import load_config
from dove.model import Dove
from dove.pretrained import PretrainedError, load_vqgan
from dove_testutil import diffusers_tiny_config, perturb_

AMUSED_VQ = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 5,
    up_block_types=["UpDecoderBlock2D"] * 5,
    block_out_channels=[128, 256, 256, 512, 768],
    layers_per_block=2,
    act_fn="silu",
    latent_channels=64,
    num_vq_embeddings=8192,
    norm_num_groups=32,
    vq_embed_dim=None,
    scaling_factor=0.18215,
    mid_block_add_attention=False,
    lookup_from_codebook=True,
    force_upcast=False,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    torch.manual_seed(11)
    ref = diffusers.VQModel(**AMUSED_VQ).eval()
    perturb_(ref, seed=12, scale=0.02)
    folder = tmp_path_factory.mktemp("amused-vqvae")
    ref.save_pretrained(str(folder))
    return ref, str(folder)


@pytest.fixture(scope="module")
def ours(reference):
    _, folder = reference
    cfg = load_config("official-14m")
    model = Dove(cfg, "dove").eval()
    load_vqgan(model, folder, cfg)
    return model


def test_downsampling_matches_amused_geometry(reference, ours):
    ref, _ = reference
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert ours.vqgan.encode(x).shape == ref.encode(x).latents.shape == (1, 64, 4, 4)  # x16, 4 downsamples


def test_encoder_latents_match_diffusers(reference, ours):
    ref, _ = reference
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        want = ref.encode(x).latents  # pre-quantisation, after quant_conv
        got = ours.vqgan.encode(x)
    assert want.abs().max() > 1e-3
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_decoder_output_matches_diffusers(reference, ours):
    ref, _ = reference
    gen = torch.Generator().manual_seed(4)
    h = torch.randn(2, 64, 4, 4, generator=gen)
    with torch.no_grad():
        # VQModel.decode without quantisation: post_quant_conv then decoder (norm_type "group").
        want = ref.decoder(ref.post_quant_conv(h))
        got = ours.vqgan.decode(h)
    assert got.shape == (2, 3, 64, 64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_bin_weights_load_too(tmp_path):
    torch.manual_seed(5)
    cfg = diffusers_tiny_config()
    vq = cfg["vqgan"]
    n = len(vq["block_out_channels"])
    ref = diffusers.VQModel(
        block_out_channels=vq["block_out_channels"], layers_per_block=vq["layers_per_block"],
        latent_channels=vq["latent_channels"], norm_num_groups=vq["norm_num_groups"],
        down_block_types=["DownEncoderBlock2D"] * n, up_block_types=["UpDecoderBlock2D"] * n,
        mid_block_add_attention=False,
    ).eval()
    perturb_(ref, seed=6)
    ref.save_pretrained(str(tmp_path), safe_serialization=False)
    assert os.path.isfile(tmp_path / "diffusion_pytorch_model.bin")
    model = Dove(cfg, "dove").eval()
    load_vqgan(model, str(tmp_path), cfg)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.vqgan(x), ref.decoder(ref.post_quant_conv(ref.encode(x).latents)),
                                   rtol=0, atol=1e-5)


def test_missing_and_mismatched_keys_are_listed(tmp_path):
    from safetensors.torch import load_file, save_file

    cfg = diffusers_tiny_config()
    vq = cfg["vqgan"]
    n = len(vq["block_out_channels"])
    ref = diffusers.VQModel(
        block_out_channels=vq["block_out_channels"], layers_per_block=vq["layers_per_block"],
        latent_channels=vq["latent_channels"], norm_num_groups=vq["norm_num_groups"],
        down_block_types=["DownEncoderBlock2D"] * n, up_block_types=["UpDecoderBlock2D"] * n,
        mid_block_add_attention=False,
    )
    ref.save_pretrained(str(tmp_path))
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    state = load_file(str(path))
    del state["encoder.conv_in.weight"]
    state["decoder.conv_out.bias"] = torch.zeros(7)
    state["encoder.extra.weight"] = torch.zeros(1)
    save_file(state, str(path))
    model = Dove(cfg, "dove")
    with pytest.raises(PretrainedError) as err:
        load_vqgan(model, str(tmp_path), cfg)
    msg = str(err.value)
    assert "missing keys (1): encoder.conv_in.weight" in msg
    assert "unexpected keys (1): encoder.extra.weight" in msg
    assert "decoder.conv_out.bias: checkpoint [7] vs model [3]" in msg


def test_config_mismatch_is_reported(tmp_path):
    cfg = diffusers_tiny_config()
    (tmp_path / "config.json").write_text(json.dumps(dict(AMUSED_VQ, _class_name="VQModel")))
    with pytest.raises(PretrainedError, match="block_out_channels"):
        load_vqgan(Dove(cfg, "dove"), str(tmp_path), cfg)
