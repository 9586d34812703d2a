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


def latent_grid(cfg: Dict[str, Any]) -> int:
    """Side of the VQGAN latent grid: one downsample per down block except the last (as diffusers)."""
    factor = 2 ** (len(cfg["vqgan"]["block_out_channels"]) - 1)
    return cfg["imageSize"] // factor


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
    for key in ("block_out_channels", "layers_per_block", "latent_channels", "norm_num_groups"):
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
    if loss["stage"] not in ("dove", "autoencoder"):
        problems.append(f"loss.stage must be 'dove' or 'autoencoder', got {loss['stage']!r}")

    if vq["mid_block_add_attention"]:
        problems.append("vqgan.mid_block_add_attention must be false (the aMUSEd VQ-VAE has no mid-block attention)")
    groups = vq["norm_num_groups"]
    for ch in vq["block_out_channels"]:
        if ch % groups != 0:
            problems.append(f"vqgan block channel {ch} is not divisible by norm_num_groups {groups}")
    factor = 2 ** (len(vq["block_out_channels"]) - 1)
    size = cfg["imageSize"]
    if size % factor != 0:
        problems.append(f"imageSize {size} is not divisible by the VQGAN downsampling factor {factor}")
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
