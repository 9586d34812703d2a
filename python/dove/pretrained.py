"""Import pretrained parts by parameter name: a diffusers VQModel folder (--vqgan), a Hugging Face
GPT-NeoX folder (--pythia) and a DOVE checkpoint (--checkpoint). Anything that does not fit fails
with a message listing every missing key, unexpected key and shape mismatch."""
import json
import os
import zipfile
from typing import Dict, Iterable, List, Optional

import torch

from .model import Dove


class PretrainedError(ValueError):
    pass


def _read_json(path: str) -> dict:
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def _load_tensor_file(path: str) -> Dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict):
        raise PretrainedError(f"{path} does not hold a state dict")
    return obj


def read_weights(folder: str, stems: Iterable[str]) -> Dict[str, torch.Tensor]:
    """Weights of an HF/diffusers folder: <stem>.safetensors, <stem>.bin, or a sharded *.index.json."""
    tried: List[str] = []
    for stem in stems:
        for ext in (".safetensors", ".bin"):
            path = os.path.join(folder, stem + ext)
            tried.append(os.path.basename(path))
            if os.path.isfile(path):
                return _load_tensor_file(path)
            index = path + ".index.json"
            if os.path.isfile(index):
                shards = sorted(set(_read_json(index)["weight_map"].values()))
                out: Dict[str, torch.Tensor] = {}
                for shard in shards:
                    out.update(_load_tensor_file(os.path.join(folder, shard)))
                return out
    raise PretrainedError(f"No weights found in {folder} (looked for {', '.join(tried)} and their .index.json)")


def load_into(module: torch.nn.Module, state: Dict[str, torch.Tensor], what: str) -> None:
    """Strict load by name; every problem is listed in one error."""
    own = module.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    mismatched = sorted(
        f"{k}: checkpoint {list(state[k].shape)} vs model {list(own[k].shape)}"
        for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or mismatched:
        lines = [f"Cannot load {what}:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): " + ", ".join(missing))
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): " + ", ".join(unexpected))
        if mismatched:
            lines.append(f"  shape mismatches ({len(mismatched)}): " + "; ".join(mismatched))
        raise PretrainedError("\n".join(lines))
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k].to(dtype=v.dtype))


# ---------------------------------------------------------------------------------------------- VQGAN
def check_vqgan_config(folder_cfg: dict, cfg: dict) -> None:
    vq = cfg["vqgan"]
    if vq.get("type", "diffusers") != "diffusers":
        raise PretrainedError(f"--vqgan loads a diffusers VQModel, but this config's autoencoder is of type {vq['type']!r}")
    problems: List[str] = []
    n = len(vq["block_out_channels"])
    expect = {
        "block_out_channels": list(vq["block_out_channels"]),
        "layers_per_block": vq["layers_per_block"],
        "latent_channels": vq["latent_channels"],
        "norm_num_groups": vq["norm_num_groups"],
        "in_channels": vq.get("in_channels", 3),
        "out_channels": vq.get("out_channels", 3),
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "up_block_types": ["UpDecoderBlock2D"] * n,
    }
    for key, want in expect.items():
        if key in folder_cfg and list_or(folder_cfg[key]) != list_or(want):
            problems.append(f"{key}: folder {folder_cfg[key]} vs DOVE config {want}")
    if folder_cfg.get("mid_block_add_attention", True):
        problems.append("mid_block_add_attention: the folder's VQModel has mid-block attention, DOVE's VQGAN has none")
    if folder_cfg.get("norm_type", "group") != "group":
        problems.append(f"norm_type {folder_cfg.get('norm_type')!r} is not supported (group only)")
    vq_dim = folder_cfg.get("vq_embed_dim")
    if vq_dim is not None and vq_dim != vq["latent_channels"]:
        problems.append(f"vq_embed_dim {vq_dim} differs from latent_channels {vq['latent_channels']}")
    if problems:
        raise PretrainedError("VQGAN folder does not match the DOVE config:\n  " + "\n  ".join(problems))


def list_or(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def load_vqgan(model: Dove, folder: str, cfg: dict) -> None:
    cfg_path = os.path.join(folder, "config.json")
    if not os.path.isfile(cfg_path):
        raise PretrainedError(f"{folder} is not a diffusers model folder (no config.json)")
    check_vqgan_config(_read_json(cfg_path), cfg)
    state = read_weights(folder, ["diffusion_pytorch_model", "diffusion_pytorch_model.fp16", "model"])
    # The codebook is not on DOVE's path (pre-quantisation latents are used).
    state = {k: v for k, v in state.items() if not k.startswith("quantize.")}
    load_into(model.vqgan, state, f"VQGAN from {folder}")


# --------------------------------------------------------------------------------------------- Pythia
_NEOX_IGNORED_SUFFIXES = (".attention.bias", ".attention.masked_bias", ".attention.rotary_emb.inv_freq")


def neox_settings(folder_cfg: dict) -> dict:
    """Normalise GPT-NeoX config.json (transformers 4 and 5 spellings)."""
    rope = folder_cfg.get("rope_parameters") or folder_cfg.get("rope_scaling") or {}
    return {
        "hidden_size": folder_cfg.get("hidden_size"),
        "num_attention_heads": folder_cfg.get("num_attention_heads"),
        "intermediate_size": folder_cfg.get("intermediate_size"),
        "num_hidden_layers": folder_cfg.get("num_hidden_layers"),
        "rotary_pct": folder_cfg.get("rotary_pct", rope.get("partial_rotary_factor", 0.25)),
        "rotary_emb_base": folder_cfg.get("rotary_emb_base", folder_cfg.get("rope_theta", rope.get("rope_theta", 10000))),
        "layer_norm_eps": folder_cfg.get("layer_norm_eps", 1e-5),
        "use_parallel_residual": folder_cfg.get("use_parallel_residual", True),
        "hidden_act": folder_cfg.get("hidden_act", "gelu"),
        "vocab_size": folder_cfg.get("vocab_size"),
        "attention_bias": folder_cfg.get("attention_bias", True),
    }


def check_pythia_config(settings: dict, cfg: dict, variant: str) -> None:
    tr = cfg["transformer"]
    problems: List[str] = []
    for key in ("hidden_size", "num_attention_heads", "intermediate_size", "use_parallel_residual"):
        if settings[key] != tr[key]:
            problems.append(f"{key}: folder {settings[key]} vs DOVE config {tr[key]}")
    for key in ("rotary_pct", "rotary_emb_base", "layer_norm_eps"):
        if abs(float(settings[key]) - float(tr[key])) > 1e-12 * max(1.0, abs(float(tr[key]))):
            problems.append(f"{key}: folder {settings[key]} vs DOVE config {tr[key]}")
    for key in ("generator_layers", "decoder_layers"):
        if settings["num_hidden_layers"] != tr[key]:
            problems.append(f"num_hidden_layers {settings['num_hidden_layers']} vs DOVE {key} {tr[key]}")
    if settings["hidden_act"] != "gelu":
        problems.append(f"hidden_act {settings['hidden_act']!r} (DOVE uses exact gelu)")
    if not settings["attention_bias"]:
        problems.append("attention_bias false (DOVE's attention has biases)")
    if variant == "qdove" and settings["vocab_size"] != tr["vocab_size"]:
        problems.append(f"vocab_size: folder {settings['vocab_size']} vs DOVE config {tr['vocab_size']}")
    if problems:
        raise PretrainedError("Pythia folder does not match the DOVE config:\n  " + "\n  ".join(problems))


def load_pythia(model: Dove, folder: str, cfg: dict) -> None:
    """Both stacks (generator causal, token decoder bidirectional) start from the same Pythia layers;
    Q-DOVE's query embedding is Pythia's word embedding."""
    cfg_path = os.path.join(folder, "config.json")
    if not os.path.isfile(cfg_path):
        raise PretrainedError(f"{folder} is not a Hugging Face model folder (no config.json)")
    check_pythia_config(neox_settings(_read_json(cfg_path)), cfg, model.variant)
    raw = read_weights(folder, ["model", "pytorch_model"])
    state: Dict[str, torch.Tensor] = {}
    for k, v in raw.items():
        if k.startswith("gpt_neox."):
            k = k[len("gpt_neox."):]
        if k in ("embed_out.weight", "lm_head.weight") or k.endswith(_NEOX_IGNORED_SUFFIXES):
            continue  # LM head and legacy non-parameter buffers are not used by DOVE
        state[k] = v
    embed = state.pop("embed_in.weight", None)
    load_into(model.generator, state, f"Pythia layers from {folder} into generator")
    decoder_own = {k: v for k, v in model.token_decoder.state_dict().items() if not k.startswith(("token_in.", "pos_embed"))}
    merged = dict(state)
    for k, v in model.token_decoder.state_dict().items():
        if k not in decoder_own:
            merged[k] = v  # DOVE-only parts of the token decoder keep their initialisation
    load_into(model.token_decoder, merged, f"Pythia layers from {folder} into token_decoder")
    if model.query_embed is not None:
        if embed is None:
            raise PretrainedError(f"Cannot load Q-DOVE query embedding: {folder} has no embed_in.weight")
        load_into(model.query_embed, {"weight": embed}, f"Pythia word embedding from {folder}")


# ---------------------------------------------------------------------------------------- checkpoints
def load_checkpoint(model: Dove, path: str) -> None:
    """A DOVE state dict (.safetensors / torch.save), possibly wrapped in {"state_dict"|"model": ...}, or a
    DOVE TorchScript archive saved by the exporter or the Trainer."""
    if not os.path.isfile(path):
        raise PretrainedError(f"Checkpoint {path} does not exist")
    state: Optional[Dict[str, torch.Tensor]] = None
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            scripted = any(n.endswith("/code/__torch__.py") or "/code/" in n for n in zf.namelist())
        if scripted:
            state = dict(torch.jit.load(path, map_location="cpu").state_dict())
            # A scripted module's state_dict also lists buffers that are derived, not learned.
            derived = {f"{prefix}.{b}" if prefix else b for prefix, mod in model.named_modules()
                       for b in getattr(mod, "_non_persistent_buffers_set", ())}
            state = {k: v for k, v in state.items() if k not in derived}
    if state is None:
        state = _load_tensor_file(path)
        for key in ("state_dict", "model"):
            inner = state.get(key) if isinstance(state, dict) else None
            if isinstance(inner, dict):
                state = inner
                break
    load_into(model, state, f"checkpoint {path}")
