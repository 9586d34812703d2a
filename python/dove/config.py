"""DOVE configurations are JSON data (python/dove/configs/*.json); this module loads and checks them."""
import copy
import json
import os
from typing import Any, Dict, List

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
BUILTIN_CONFIGS = ("tiny", "official-14m", "official-70m")


class ConfigError(ValueError):
    """A configuration that cannot describe a working DOVE model."""


def builtin_config_path(name: str) -> str:
    return os.path.join(CONFIG_DIR, f"{name}.json")


def load_config(name_or_path: str) -> Dict[str, Any]:
    """Load a built-in config by name (tiny, official-14m, official-70m) or a JSON file by path."""
    if name_or_path in BUILTIN_CONFIGS:
        path = builtin_config_path(name_or_path)
    elif os.path.isfile(name_or_path):
        path = name_or_path
    else:
        raise ConfigError(
            f"Unknown config {name_or_path!r}: expected one of {', '.join(BUILTIN_CONFIGS)} or a JSON file path"
        )
    with open(path, "r", encoding="utf-8") as f:
        cfg = json.load(f)
    if name_or_path not in BUILTIN_CONFIGS:
        cfg.setdefault("name", "custom")
    validate_config(cfg)
    return cfg


def config_name(cfg: Dict[str, Any]) -> str:
    name = cfg.get("name", "custom")
    return name if name in BUILTIN_CONFIGS else "custom"


AUTOENCODER_TYPES = ("diffusers", "blocktransform")


def autoencoder_type(cfg: Dict[str, Any]) -> str:
    """"diffusers": the aMUSEd VQ-VAE layout (official configs, loads pretrained weights by name);
    "blocktransform": dove.transform_ae, the from-scratch autoencoder of small models."""
    return str(cfg["vqgan"].get("type", "diffusers"))


def downsampling(cfg: Dict[str, Any]) -> int:
    """Input side / latent side."""
    vq = cfg["vqgan"]
    if autoencoder_type(cfg) == "blocktransform":
        return int(vq["block"])
    # diffusers: one downsample per down block except the last.
    return 2 ** (len(vq["block_out_channels"]) - 1)


def latent_grid(cfg: Dict[str, Any]) -> int:
    """Side of the autoencoder's latent grid."""
    return cfg["imageSize"] // downsampling(cfg)


def validate_config(cfg: Dict[str, Any]) -> None:
    problems: List[str] = []

    def need(obj: Dict[str, Any], key: str, where: str) -> Any:
        if key not in obj:
            problems.append(f"missing {where}{key}")
            return None
        return obj[key]

    for key in ("imageSize", "maxTokens", "tokenDim", "eosThreshold", "vqgan", "transformer"):
        need(cfg, key, "")
    if problems:
        raise ConfigError("Invalid DOVE config: " + "; ".join(problems))
    vq = cfg["vqgan"]
    tr = cfg["transformer"]
    kind = vq.setdefault("type", "diffusers")
    if kind not in AUTOENCODER_TYPES:
        raise ConfigError(f"Invalid DOVE config: vqgan.type must be one of {', '.join(AUTOENCODER_TYPES)}, got {kind!r}")
    ae_keys = ("block", "latent_channels", "refine_channels", "refine_blocks") if kind == "blocktransform" else (
        "block_out_channels", "layers_per_block", "latent_channels", "norm_num_groups")
    for key in ae_keys:
        need(vq, key, "vqgan.")
    for key in ("hidden_size", "num_attention_heads", "intermediate_size", "generator_layers", "decoder_layers"):
        need(tr, key, "transformer.")
    if problems:
        raise ConfigError("Invalid DOVE config: " + "; ".join(problems))
    vq.setdefault("in_channels", 3)
    vq.setdefault("out_channels", 3)
    vq.setdefault("mid_block_add_attention", False)
    tr.setdefault("rotary_pct", 0.25)
    tr.setdefault("rotary_emb_base", 10000)
    tr.setdefault("layer_norm_eps", 1e-5)
    tr.setdefault("use_parallel_residual", True)
    tr.setdefault("vocab_size", 50304)
    # What the transformers' sequence runs over: the latent grid's positions (the paper's layout) or its
    # channels (each channel one whole latent map; used with the ordered channels of "blocktransform").
    tr.setdefault("sequence", "positions")
    # Slot k's input also gets sequence element k's embedding: with "channels", a fresh generator can
    # hand channel k to slot k without first learning to find it by attention.
    tr.setdefault("slot_skip", False)
    cfg.setdefault("query", {"maxLength": 64})
    cfg["query"].setdefault("maxLength", 64)
    loss = cfg.setdefault("loss", {})
    loss.setdefault("eosWeight", 0.1)
    loss.setdefault("eosWindow", 4)
    loss.setdefault("predictedLengthProb", 0.5)
    loss.setdefault("lengthPenalty", 0.0)
    loss.setdefault("irrelevantWeight", 0.1)
    # Auxiliary terms for from-scratch training (off for the paper's fine-tuning setups).
    loss.setdefault("autoencoderWeight", 0.0)
    loss.setdefault("latentWeight", 0.0)
    # "autoencoder": forward trains only the VQGAN (first stage of a from-scratch model).
    loss.setdefault("stage", "dove")
    # Training lengths drawn when not at the EOS-predicted length: "uniform" over 1..K (the paper's
    # default), "loguniform" (P(L) ~ 1/L, more practice for the short prefixes) or "mixed" (half each).
    loss.setdefault("lengthSampling", "uniform")
    if loss["lengthSampling"] not in ("uniform", "mixed", "loguniform"):
        problems.append(f"loss.lengthSampling must be 'uniform', 'mixed' or 'loguniform', got {loss['lengthSampling']!r}")
    if loss["stage"] not in ("dove", "autoencoder"):
        problems.append(f"loss.stage must be 'dove' or 'autoencoder', got {loss['stage']!r}")

    if kind == "blocktransform":
        block, lat = vq["block"], vq["latent_channels"]
        chans, blocks = vq["refine_channels"], vq["refine_blocks"]
        if not isinstance(block, int) or block < 4 or block & (block - 1):
            problems.append(f"vqgan.block must be a power of two >= 4, got {block!r}")
        elif not isinstance(lat, int) or not 1 <= lat <= 3 * block * block:
            problems.append(f"vqgan.latent_channels must be between 1 and {3 * block * block}, got {lat!r}")
        elif not isinstance(chans, list) or not all(isinstance(c, int) and c > 0 for c in chans) \
                or 4 * 2 ** (len(chans) - 1) != block:
            problems.append(f"vqgan.refine_channels must list {block.bit_length() - 2} positive widths (one per "
                            f"halving from 1/4 down to 1/{block} of the input side), got {chans!r}")
        elif not isinstance(blocks, list) or len(blocks) != len(chans) or not all(isinstance(b, int) and b >= 0 for b in blocks):
            problems.append("vqgan.refine_blocks must list one non-negative integer per entry of vqgan.refine_channels")
    else:
        if vq["mid_block_add_attention"]:
            problems.append("vqgan.mid_block_add_attention must be false (the aMUSEd VQ-VAE has no mid-block attention)")
        groups = vq["norm_num_groups"]
        for ch in vq["block_out_channels"]:
            if ch % groups != 0:
                problems.append(f"vqgan block channel {ch} is not divisible by norm_num_groups {groups}")
    if tr["sequence"] not in ("positions", "channels"):
        problems.append(f"transformer.sequence must be 'positions' or 'channels', got {tr['sequence']!r}")
    if not isinstance(tr["slot_skip"], bool):
        problems.append("transformer.slot_skip must be true or false")
    if problems:
        raise ConfigError("Invalid DOVE config: " + "; ".join(problems))
    factor = downsampling(cfg)
    size = cfg["imageSize"]
    if size % factor != 0:
        problems.append(f"imageSize {size} is not divisible by the VQGAN downsampling factor {factor}")
    else:
        if tr["sequence"] == "channels":
            if cfg["maxTokens"] != vq["latent_channels"]:
                problems.append(
                    f"maxTokens {cfg['maxTokens']} must equal vqgan.latent_channels {vq['latent_channels']}: "
                    f"with transformer.sequence 'channels', decoder slot k is latent channel k")
        else:
            positions = (size // factor) ** 2
            if cfg["maxTokens"] != positions:
                problems.append(
                    f"maxTokens {cfg['maxTokens']} must equal the latent positions {positions} "
                    f"({size // factor}x{size // factor}): decoder slot k is latent position k"
                )
    d, heads = tr["hidden_size"], tr["num_attention_heads"]
    if d % heads != 0:
        problems.append(f"hidden_size {d} is not divisible by num_attention_heads {heads}")
    else:
        rot = int((d // heads) * tr["rotary_pct"])
        if rot % 2 != 0:
            problems.append(f"rotary dims {rot} must be even")
    if d % 2 != 0:
        problems.append("hidden_size must be even (sinusoidal timestep embedding)")
    if not 0.0 < float(cfg["eosThreshold"]) < 1.0:
        problems.append("eosThreshold must be in (0, 1)")
    if problems:
        raise ConfigError("Invalid DOVE config: " + "; ".join(problems))


def clone(cfg: Dict[str, Any]) -> Dict[str, Any]:
    return copy.deepcopy(cfg)
