"""DOVE / Q-DOVE behaviour on the tiny config (and the generator of the official ones): causality,
decode ignoring slots past the length, length modes, Q-DOVE query and region-mask effects, losses."""
import math

import pytest
import torch

from dove.config import ConfigError, load_config, validate_config
from dove.model import Dove, eos_rule_loss
from dove_testutil import perturb_

TD = load_config("tiny")["tokenDim"]  # the tiny config's token width


def tiny(variant="dove", seed=0):
    torch.manual_seed(seed)
    model = Dove(load_config("tiny"), variant).eval()
    perturb_(model, seed=seed + 100, scale=0.02)
    return model


@pytest.fixture(scope="module")
def dove():
    return tiny("dove", 1)


@pytest.fixture(scope="module")
def qdove():
    return tiny("qdove", 2)


@pytest.fixture(scope="module")
def scripted(dove):
    return torch.jit.script(dove)


def pixels(b, size=64, seed=0):
    return torch.randint(0, 256, (b, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ causality
@pytest.mark.parametrize("variant", ["dove", "qdove"])
def test_tokens_below_k_are_bit_identical_for_k_and_max_slots(dove, qdove, variant):
    model = dove if variant == "dove" else qdove
    x = pixels(3, seed=1)
    qids = qmask = None
    if variant == "qdove":
        qids = torch.tensor([[5, 9, 11, 1], [7, 1, 1, 1], [3, 4, 5, 6]])
        qmask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    with torch.no_grad():
        full_tok, full_eos = model.encode(x, 64, qids, qmask)
        for k in (1, 2, 7, 16, 33, 63, 64):
            tok, eos = model.encode(x, k, qids, qmask)
            assert tok.shape == (3, k, TD) and eos.shape == (3, k)
            assert torch.equal(tok, full_tok[:, :k]), k
            assert torch.equal(eos, full_eos[:, :k]), k


def test_causality_holds_in_torchscript(dove, scripted):
    x = pixels(2, seed=2)
    with torch.no_grad():
        full_tok, full_eos = scripted.encode(x, 64)
        tok, eos = scripted.encode(x, 9)
        eager_tok, _ = dove.encode(x, 64)
    assert torch.equal(tok, full_tok[:, :9]) and torch.equal(eos, full_eos[:, :9])
    torch.testing.assert_close(full_tok, eager_tok, rtol=0, atol=1e-6)


def test_official_generator_causality():
    # The generator alone (random latents instead of the 256px VQGAN) keeps this cheap.
    torch.manual_seed(3)
    model = Dove(load_config("official-14m"), "dove").eval()
    latents = torch.randn(2, 64, 16, 16)
    with torch.no_grad():
        full_tok, full_eos = model._generate(latents, 256, None, None)
        for k in (1, 100, 255):
            tok, eos = model._generate(latents, k, None, None)
            assert torch.equal(tok, full_tok[:, :k]) and torch.equal(eos, full_eos[:, :k]), k


# ---------------------------------------------------------------------------------------------- decode
def test_decode_ignores_every_slot_at_or_beyond_length(dove):
    gen = torch.Generator().manual_seed(4)
    tokens = torch.randn(3, 64, TD, generator=gen)
    lengths = torch.tensor([1, 17, 63])
    changed = tokens.clone()
    for i, n in enumerate(lengths.tolist()):
        changed[i, n:] = torch.randn(64 - n, TD, generator=gen) * 100
    changed[0, 5] = float("nan")
    changed[1, 40] = float("inf")
    with torch.no_grad():
        a = dove.decode(tokens, lengths)
        b = dove.decode(changed, lengths)
        # Fewer slots given than max: missing slots count as beyond the length too.
        c = dove.decode(tokens[:, :63], lengths)
        full = dove.decode(tokens, torch.tensor([64, 64, 64]))
    assert a.shape == (3, 3, 64, 64) and float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b)
    assert torch.equal(a, c)
    # ...and slots below the length do matter.
    assert not torch.equal(a, full)


def test_decode_pixels_is_rounded_decode(scripted):
    tokens = torch.randn(2, 10, TD, generator=torch.Generator().manual_seed(5))
    lengths = torch.tensor([4, 10])
    with torch.no_grad():
        img = scripted.decode(tokens, lengths)
        px = scripted.decode_pixels(tokens, lengths)
    assert px.dtype == torch.uint8 and px.shape == (2, 64, 64, 3)
    assert torch.equal(px, (img * 255).round().to(torch.uint8).permute(0, 2, 3, 1))


def test_decode_rejects_bad_lengths(scripted):
    tokens = torch.zeros(2, 8, TD)
    with pytest.raises(Exception, match="lengths between 0 and 8"):
        scripted.decode(tokens, torch.tensor([3, 9]))
    with pytest.raises(Exception, match=r"shape \(2,\)"):
        scripted.decode(tokens, torch.tensor([3]))
    with pytest.raises(Exception, match=rf"tokens of shape \(B,K,{TD}\)"):
        scripted.decode(torch.zeros(2, 8, 7), torch.tensor([1, 1]))


# ----------------------------------------------------------------------------------------- length modes
def test_select_lengths_modes(scripted):
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    probs = torch.tensor([
        [0.1, 0.2, 0.7, 0.9, 0.1, 0.1, 0.1, 0.1],   # first above 0.5 at i=2 -> 3
        [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],   # never -> K = 8
        [0.6, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],   # i=0 -> 1
        [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3, 0.55],  # i=7 -> 8
    ])
    logits = torch.log(probs / (1 - probs))
    assert scripted.select_lengths(logits, "auto", 8, 0.5).tolist() == [3, 8, 1, 8]
    assert scripted.select_lengths(logits, "auto", 8, 0.25).tolist() == [3, 8, 1, 7]
    assert scripted.select_lengths(logits, "fixed", 5, 0.5).tolist() == [5, 5, 5, 5]
    assert scripted.select_lengths(logits, "capped", 5, 0.5).tolist() == [3, 5, 1, 5]
    assert scripted.select_lengths(logits, "capped", 2, 0.5).tolist() == [2, 2, 1, 2]
    assert scripted.select_lengths(logits, "auto", 8, 0.5).dtype == torch.int64
    with pytest.raises(Exception, match="'auto', 'fixed' or 'capped'"):
        scripted.select_lengths(logits, "sometimes", 4, 0.5)
    with pytest.raises(Exception, match="between 1 and 8 for budget but received 9"):
        scripted.select_lengths(logits, "fixed", 9, 0.5)
    with pytest.raises(Exception, match="threshold"):
        scripted.select_lengths(logits, "auto", 8, 1.5)
    # A logit of exactly the threshold is not "above" it.
    assert scripted.select_lengths(torch.full((1, 4), logit(0.5)), "auto", 4, 0.5).tolist() == [4]


def test_encode_pixels_modes_agree_with_full_encode(scripted):
    x = pixels(2, seed=6)
    with torch.no_grad():
        tok, logits = scripted.encode(x, 64)
        probs = torch.sigmoid(logits)
        thr = float(torch.quantile(probs.flatten(), 0.8))
        auto_full = scripted.select_lengths(logits, "auto", 64, thr)
        t_auto, p_auto, l_auto = scripted.encode_pixels(x, "auto", 64, thr)
        t_fix, p_fix, l_fix = scripted.encode_pixels(x, "fixed", 12, thr)
        t_cap, p_cap, l_cap = scripted.encode_pixels(x, "capped", 12, thr)
    assert torch.equal(l_auto, auto_full) and torch.equal(t_auto, tok) and torch.equal(p_auto, probs)
    assert l_fix.tolist() == [12, 12] and t_fix.shape == (2, 12, TD) and torch.equal(t_fix, tok[:, :12])
    # The same sigmoid on the same (2,12) contiguous logits: a slice of the (2,64) probabilities may
    # differ in the last bit (the vectorised kernel handles the two sizes differently).
    assert torch.equal(l_cap, torch.clamp(auto_full, max=12))
    assert torch.equal(p_cap, torch.sigmoid(logits[:, :12].contiguous()))


def test_uint8_and_float_inputs_agree(dove):
    x = pixels(1, seed=7)
    f = x.permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        assert torch.equal(dove.encode(x, 5)[0], dove.encode(f, 5)[0])
    with pytest.raises(ValueError, match=r"\(B,64,64,3\)"):
        dove.encode(pixels(1, size=32), 5)
    with pytest.raises(ValueError, match="between 1 and 64 for max_tokens but received 0"):
        dove.encode(x, 0)


# ---------------------------------------------------------------------------------------------- Q-DOVE
def test_qdove_query_changes_tokens_and_pads_are_ignored(qdove):
    x = pixels(1, seed=8)
    a = torch.tensor([[10, 20, 30]])
    b = torch.tensor([[10, 20, 31]])
    with torch.no_grad():
        ta, _ = qdove.encode(x, 16, a, torch.ones_like(a))
        tb, _ = qdove.encode(x, 16, b, torch.ones_like(b))
        # Padding tokens behind the mask do not matter whatever their ids.
        pad1 = qdove.encode(x, 16, torch.tensor([[10, 20, 30, 1, 1]]), torch.tensor([[1, 1, 1, 0, 0]]))[0]
        pad2 = qdove.encode(x, 16, torch.tensor([[10, 20, 30, 77, 3]]), torch.tensor([[1, 1, 1, 0, 0]]))[0]
        none, _ = qdove.encode(x, 16)
    assert (ta - tb).abs().max() > 1e-4
    assert (ta - none).abs().max() > 1e-4
    assert torch.equal(pad1, pad2)
    # Pads do not shift the rotary positions either: a padded query equals the same query alone.
    torch.testing.assert_close(pad1, ta, rtol=0, atol=1e-5)
    with torch.no_grad():
        batch = qdove.encode(torch.cat([x, x]), 16, torch.tensor([[10, 20, 30, 1], [10, 20, 30, 31]]),
                             torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]))[0]
    torch.testing.assert_close(batch[0:1], ta, rtol=0, atol=1e-5)


def test_dove_rejects_queries(dove):
    with pytest.raises(ValueError, match="not Q-DOVE"):
        dove.encode(pixels(1), 4, torch.tensor([[1, 2]]), None)


def test_region_mask_changes_loss_split(qdove):
    x = pixels(2, seed=9)
    q = torch.tensor([[3, 4, 5], [6, 7, 8]])
    left = torch.zeros(2, 1, 64, 64)
    left[..., :, :20] = 1.0
    right = torch.zeros(2, 1, 64, 64)
    right[..., 30:, 40:] = 1.0
    out = {}
    with torch.no_grad():
        for name, mask in (("left", left), ("right", right), ("all", torch.ones(2, 1, 64, 64))):
            torch.manual_seed(123)  # same random training lengths for each call
            out[name] = qdove(x, mask, q, torch.ones_like(q))
    l, r, a = out["left"], out["right"], out["all"]
    assert torch.equal(l["rec"], r["rec"])  # same reconstruction...
    assert not torch.isclose(l["rel"], r["rel"]) and not torch.isclose(l["irr"], r["irr"])  # ...split differently
    torch.testing.assert_close(a["rel"], a["rec"])
    assert float(a["irr"]) == 0.0
    # Auxiliary from-scratch terms appear (and add to the loss) only when the config weights them.
    loss_cfg = load_config("tiny")["loss"]
    aux = {k: loss_cfg[w] for k, w in (("ae", "autoencoderWeight"), ("latent", "latentWeight")) if loss_cfg[w] > 0}
    want = l["rel"] + 0.1 * l["irr"] + 0.1 * l["eos"] + sum(weight * l[k] for k, weight in aux.items())
    torch.testing.assert_close(l["loss"], want)
    assert set(l) == {"loss", "rec", "eos", "length", "rel", "irr"} | set(aux)


# ---------------------------------------------------------------------------------------------- losses
def test_eos_rule_targets_the_right_slots():
    k = 10
    logits = torch.zeros(4, k, requires_grad=True)
    pred_len = torch.tensor([6, 6, 3, 8])
    use_pred = torch.tensor([True, True, True, False])
    error = torch.tensor([3.0, 0.1, 0.2, 1.0])  # mean 1.075: sample 0 worse, 1 and 2 better, 3 unused
    loss = eos_rule_loss(logits, pred_len, use_pred, error, 4)
    loss.backward()
    g = logits.grad
    # worse -> push its EOS slot (index 5) down: positive gradient there only.
    assert g[0, 5] > 0 and g[0].count_nonzero() == 1
    # better -> push the 4 slots before the EOS slot (1..4) up: negative gradients.
    assert (g[1, 1:5] < 0).all() and g[1].count_nonzero() == 4
    # window clipped at slot 0: EOS slot 2 -> slots 0, 1.
    assert (g[2, 0:2] < 0).all() and g[2].count_nonzero() == 2
    assert g[3].count_nonzero() == 0
    # 1 + 4 + 2 selected logits at p=0.5: BCE = ln 2 each.
    torch.testing.assert_close(loss, torch.tensor(math.log(2.0)))


def test_training_forward_backward_reaches_every_part(dove):
    torch.manual_seed(0)
    model = tiny("dove", 5).train()
    # tiny's zero-initialised heads (token_head, latent_out, the refinements' last convolutions) pass no
    # gradient to the stacks behind them until their first update: give every parameter weights first.
    perturb_(model, seed=9, scale=0.02)
    out = model(pixels(4, seed=10))
    loss_cfg = load_config("tiny")["loss"]
    aux = {k for k, w in (("ae", "autoencoderWeight"), ("latent", "latentWeight")) if loss_cfg[w] > 0}
    assert set(out) == {"loss", "rec", "eos", "length"} | aux
    out["loss"].backward()
    for prefix in ("vqgan.encoder", "vqgan.decoder", "generator", "token_decoder", "time_embed", "latent_in",
                   "latent_out", "token_head"):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(prefix)]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), prefix


def test_training_lengths_follow_the_global_generator():
    model = tiny("dove", 6).train()
    x = pixels(4, seed=11)
    torch.manual_seed(42)
    a = model(x)
    torch.manual_seed(42)
    b = model(x)
    torch.manual_seed(43)
    c = model(x)
    assert torch.equal(a["loss"], b["loss"])
    assert not torch.equal(a["loss"], c["loss"])


@pytest.mark.parametrize("p_stop", [0.05, 0.3])
def test_length_penalty_adds_expected_length_term(p_stop):
    """With every EOS probability fixed at p (EOS head weight 0, bias logit(p)), the length is geometric:
    E[length] = sum_{i=1..K} (1-p)^(i-1) = (1 - (1-p)^K) / p, and the loss grows by penalty * E[length] / K."""
    cfg = load_config("tiny")
    k = cfg["maxTokens"]
    models = []
    for penalty in (0.5, 0.0):
        cfg["loss"]["lengthPenalty"] = penalty
        torch.manual_seed(7)
        model = Dove(cfg, "dove")
        with torch.no_grad():
            model.eos_head.weight.zero_()
            model.eos_head.bias.fill_(math.log(p_stop / (1 - p_stop)))
        models.append(model)
    x = pixels(2, seed=12)
    torch.manual_seed(1)
    a = models[0](x)
    torch.manual_seed(1)
    b = models[1](x)
    expected_length = (1 - (1 - p_stop) ** k) / p_stop
    torch.testing.assert_close(a["loss"] - b["loss"], torch.tensor(0.5 * expected_length / k), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("name", ["tiny", "official-14m", "official-70m"])
def test_every_config_runs_a_forward_on_one_image(name):
    cfg = load_config(name)
    torch.manual_seed(0)
    model = Dove(cfg, "dove").eval()
    size = cfg["imageSize"]
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        out = model(x)
    aux = {"ae", "latent"} if cfg["loss"]["autoencoderWeight"] > 0 else set()
    assert set(out) == {"loss", "rec", "eos", "length"} | aux
    assert all(torch.isfinite(v) for v in out.values())
    assert 1.0 <= float(out["length"]) <= cfg["maxTokens"]


def test_config_validation_names_the_problem():
    cfg = load_config("tiny")
    cfg["maxTokens"] = 60
    with pytest.raises(ConfigError, match="maxTokens 60 must equal vqgan.latent_channels 64"):
        validate_config(cfg)
    cfg = load_config("tiny")
    cfg["transformer"]["sequence"] = "positions"
    cfg["maxTokens"] = 60
    with pytest.raises(ConfigError, match="maxTokens 60 must equal the latent positions 64"):
        validate_config(cfg)
    with pytest.raises(ConfigError, match="Unknown config"):
        load_config("nope")


def test_auxiliary_terms_are_off_by_default_and_weighted_when_on():
    cfg = load_config("tiny")
    cfg["loss"]["autoencoderWeight"] = 0.0
    cfg["loss"]["latentWeight"] = 0.0
    torch.manual_seed(3)
    plain = Dove(cfg, "dove")
    cfg["loss"]["autoencoderWeight"] = 2.0
    cfg["loss"]["latentWeight"] = 0.5
    torch.manual_seed(3)
    aux = Dove(cfg, "dove")
    x = pixels(2, seed=13)
    torch.manual_seed(1)
    a = plain(x)
    torch.manual_seed(1)
    b = aux(x)
    assert "ae" not in a and "latent" not in a
    torch.testing.assert_close(b["loss"], a["loss"] + 2.0 * b["ae"] + 0.5 * b["latent"])
    # The autoencoder term is the VQGAN's own reconstruction error of the images.
    with torch.no_grad():
        x01 = x.permute(0, 3, 1, 2).float() / 255
        ae = (aux.vqgan.decode(aux.vqgan.encode(x01)).float() - x01).pow(2).mean()
    torch.testing.assert_close(b["ae"], ae)
    assert float(b["latent"]) > 0


def test_eos_rule_weighs_every_selected_sample_equally():
    # One worse sample (1 logit pushed down) and one better (4 logits pushed up) pull with equal weight.
    logits = torch.zeros(2, 10, requires_grad=True)
    loss = eos_rule_loss(logits, torch.tensor([6, 6]), torch.tensor([True, True]), torch.tensor([2.0, 0.0]), 4)
    loss.backward()
    g = logits.grad
    torch.testing.assert_close(g[0].abs().sum(), g[1].abs().sum())


def test_autoencoder_stage_trains_only_the_vqgan():
    cfg = load_config("tiny")
    cfg["loss"]["stage"] = "autoencoder"
    torch.manual_seed(4)
    model = Dove(cfg, "dove").train()
    x = pixels(2, seed=14)
    out = model(x)
    assert set(out) == {"loss", "rec", "ae", "eos", "length"}
    torch.testing.assert_close(out["loss"], (model.vqgan(model.prepare_images(x)) - model.prepare_images(x)).pow(2).mean())
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == name.startswith("vqgan."), name
