"""Our GPT-NeoX stacks against transformers' GPTNeoXModel (pythia-70m and pythia-14m configs, random
weights), imported through the same code path as `python -m dove.export --pythia DIR`."""
import pytest
import torch
import transformers

from dove.config import load_config
from dove.model import Dove
from dove.neox import causal_mask
from dove.pretrained import PretrainedError, load_pythia
from dove_testutil import perturb_

PYTHIA = {
    # public EleutherAI configs
    "official-70m": dict(hidden_size=512, num_attention_heads=8, intermediate_size=2048),
    "official-14m": dict(hidden_size=128, num_attention_heads=4, intermediate_size=512),
}


def neox_config(name: str):
    return transformers.GPTNeoXConfig(
        num_hidden_layers=6, rotary_pct=0.25, rotary_emb_base=10000, vocab_size=50304, use_parallel_residual=True,
        layer_norm_eps=1e-5, hidden_act="gelu", max_position_embeddings=2048, attention_dropout=0.0,
        hidden_dropout=0.0, **PYTHIA[name],
    )


def reference(name: str, folder: str, causal_lm: bool):
    torch.manual_seed(21)
    if causal_lm:  # the layout of the real EleutherAI checkpoints: gpt_neox.* plus embed_out
        full = transformers.GPTNeoXForCausalLM(neox_config(name)).eval()
        ref = full.gpt_neox
    else:
        full = ref = transformers.GPTNeoXModel(neox_config(name)).eval()
    perturb_(full, seed=22, scale=0.02)
    full.save_pretrained(folder)
    return ref


# The 70m checkpoint in the real EleutherAI layout (GPTNeoXForCausalLM), the 14m as a bare GPTNeoXModel.
LAYOUTS = [("official-70m", True), ("official-14m", False)]


def imported(folder, name: str, causal_lm: bool, variant: str):
    """-> (transformers reference, a DOVE model imported from its folder as `--pythia` does, hidden size)."""
    ref = reference(name, str(folder), causal_lm)
    cfg = load_config(name)
    model = Dove(cfg, variant).eval()
    load_pythia(model, str(folder), cfg)
    return ref, model, cfg["transformer"]["hidden_size"]


@pytest.mark.parametrize("name,causal_lm", LAYOUTS)
def test_causal_stack_matches_gptneox(tmp_path, name, causal_lm):
    ref, model, hidden = imported(tmp_path, name, causal_lm, "qdove")
    gen = torch.Generator().manual_seed(23)
    b, s = 2, 37
    x = torch.randn(b, s, hidden, generator=gen)
    with torch.no_grad():
        want = ref(inputs_embeds=x).last_hidden_state
        got = model.generator(x, causal_mask(s, s, None, x.device), s)
        # The generator pads keys to a fixed length (causality bit-identity); must not change results.
        got_padded = model.generator(x, causal_mask(s, s + 29, None, x.device), s + 29)
    assert want.abs().max() > 0.1
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(got_padded, want, rtol=0, atol=1e-5)

    # Both stacks start from the same Pythia layers; Q-DOVE's query embedding is Pythia's word embedding.
    gen_state = model.generator.state_dict()
    for k, v in model.token_decoder.state_dict().items():
        if k in gen_state:
            assert torch.equal(v, gen_state[k]), k
    assert torch.equal(model.query_embed.weight, ref.embed_in.weight)
    with torch.no_grad():
        ids = torch.randint(0, 50304, (b, s), generator=gen)
        torch.testing.assert_close(model.query_embed(ids), ref.embed_in(ids), rtol=0, atol=0)


def full_attention(b: int, s: int) -> torch.Tensor:
    """An additive (B,1,S,S) mask of zeros: transformers uses a 4D mask as given, so every query sees
    every key (GPTNeoXModel builds a causal one only when it gets none or a 2D padding mask)."""
    return torch.zeros(b, 1, s, s)


@pytest.mark.parametrize("name,causal_lm", LAYOUTS)
def test_bidirectional_token_decoder_matches_gptneox_without_causal_mask(tmp_path, name, causal_lm):
    ref, model, hidden = imported(tmp_path, name, causal_lm, "dove")
    gen = torch.Generator().manual_seed(24)
    b, s = 2, 48
    x = torch.randn(b, s, hidden, generator=gen)
    later = x.clone()
    # Only the last position changes (not by a constant: the first LayerNorm would remove that).
    later[:, -1] += torch.randn(later.shape[0], later.shape[2], generator=gen)
    with torch.no_grad():
        want = ref(inputs_embeds=x, attention_mask=full_attention(b, s)).last_hidden_state
        want_later = ref(inputs_embeds=later, attention_mask=full_attention(b, s)).last_hidden_state
        causal = ref(inputs_embeds=x).last_hidden_state
        got = model.token_decoder(x, None, s)
        got_later = model.token_decoder(later, None, s)
    # The reference really is bidirectional: the first position sees the last one, unlike the causal run.
    assert (want_later[:, 0] - want[:, 0]).abs().max() > 1e-3
    assert (causal[:, 0] - want[:, 0]).abs().max() > 1e-2
    assert want.abs().max() > 0.1
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(got_later, want_later, rtol=0, atol=1e-5)


def test_wrong_pythia_size_is_reported(tmp_path):
    reference("official-14m", str(tmp_path), True)
    cfg = load_config("official-70m")
    with pytest.raises(PretrainedError) as err:
        load_pythia(Dove(cfg, "dove"), str(tmp_path), cfg)
    assert "hidden_size: folder 128 vs DOVE config 512" in str(err.value)


def test_legacy_fp16_pythia_checkpoint_layout(tmp_path):
    """The real EleutherAI files: transformers-4 config.json spelling, float16 weights, gpt_neox. prefix,
    embed_out, and the legacy attention.bias / masked_bias / rotary inv_freq buffers."""
    import json

    from safetensors.torch import save_file

    torch.manual_seed(31)
    full = transformers.GPTNeoXForCausalLM(neox_config("official-14m")).eval()
    perturb_(full, seed=32, scale=0.02)
    state = {k: v.half() for k, v in full.state_dict().items()}
    for i in range(6):
        state[f"gpt_neox.layers.{i}.attention.bias"] = torch.ones(1, 1, 8, 8, dtype=torch.bool)
        state[f"gpt_neox.layers.{i}.attention.masked_bias"] = torch.tensor(-1e9)
        state[f"gpt_neox.layers.{i}.attention.rotary_emb.inv_freq"] = torch.ones(4)
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["GPTNeoXForCausalLM"], "hidden_act": "gelu", "hidden_size": 128, "intermediate_size": 512,
        "layer_norm_eps": 1e-05, "max_position_embeddings": 2048, "model_type": "gpt_neox", "num_attention_heads": 4,
        "num_hidden_layers": 6, "rotary_emb_base": 10000, "rotary_pct": 0.25, "torch_dtype": "float16",
        "use_parallel_residual": True, "vocab_size": 50304,
    }))
    cfg = load_config("official-14m")
    model = Dove(cfg, "dove").eval()
    load_pythia(model, str(tmp_path), cfg)
    # The reference with the same (float16-rounded) weights, in float32.
    full.load_state_dict({k: v.float() for k, v in state.items() if k in full.state_dict()})
    x = torch.randn(1, 20, 128, generator=torch.Generator().manual_seed(33))
    with torch.no_grad():
        want = full.gpt_neox(inputs_embeds=x).last_hidden_state
        got = model.generator(x, causal_mask(20, 20, None, x.device), 20)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
