"""Export DOVE / Q-DOVE to a TorchScript model file (docs/MODEL_FORMAT.md).

python -m dove.export --config tiny|official-14m|official-70m|path.json [--vqgan DIR] [--pythia DIR]
    [--checkpoint FILE] [--variant dove|qdove] [--tokenizer FILE] [--seed N] [--onnx PREFIX] [--fit-order DIR]
    [--compiled]
    -o model.pt
"""
import argparse
import datetime
import json
import math
import os
import sys
from typing import Any, Dict, Optional, Tuple

import torch

from .config import ConfigError, clone, config_name, load_config
from .model import Dove
from .pretrained import PretrainedError, load_checkpoint, load_pythia, load_vqgan
from .tokenizer import read_tokenizer, tokenizer_info, train_bpe

FORMAT = "dove-encoder/model"
FORMAT_VERSION = 1


def torch_version() -> str:
    return torch.__version__.split("+")[0]


def build_model(
    cfg: Dict[str, Any],
    variant: str = "dove",
    seed: int = 0,
    vqgan: Optional[str] = None,
    pythia: Optional[str] = None,
    checkpoint: Optional[str] = None,
    tokenizer_json: Optional[str] = None,
) -> Tuple[Dove, Dict[str, Any], Optional[str]]:
    """Seeded random init, then pretrained parts, then a DOVE checkpoint on top. -> (model, cfg, tokenizer)."""
    cfg = clone(cfg)
    if variant == "qdove":
        if tokenizer_json is None:
            tokenizer_json = train_bpe(vocab_size=min(4096, int(cfg["transformer"]["vocab_size"])))
        size, _ = tokenizer_info(tokenizer_json)
        tr = cfg["transformer"]
        if size > tr["vocab_size"]:
            if pythia is not None:
                raise ConfigError(f"The tokenizer has {size} tokens but the Pythia embedding has {tr['vocab_size']}")
            # Own embedding: grow it to fit the tokenizer, rounded up like GPT-NeoX pads its vocab.
            tr["vocab_size"] = int(math.ceil(size / 128) * 128)
    elif tokenizer_json is not None:
        raise ConfigError("--tokenizer is only meaningful with --variant qdove")
    torch.manual_seed(seed)
    model = Dove(cfg, variant)
    if vqgan:
        load_vqgan(model, vqgan, cfg)
    if pythia:
        load_pythia(model, pythia, cfg)
    if checkpoint:
        load_checkpoint(model, checkpoint)
    return model.eval(), cfg, tokenizer_json


def dove_json(cfg: Dict[str, Any], variant: str, seed: int, tokenizer_json: Optional[str]) -> Dict[str, Any]:
    query = None
    if variant == "qdove" and tokenizer_json is not None:
        _, pad = tokenizer_info(tokenizer_json)
        query = {"file": "tokenizer.json", "maxLength": int(cfg["query"]["maxLength"]), "padId": pad}
    return {
        "format": FORMAT,
        "formatVersion": FORMAT_VERSION,
        "variant": variant,
        "configName": config_name(cfg),
        "config": cfg,
        "imageSize": int(cfg["imageSize"]),
        "maxTokens": int(cfg["maxTokens"]),
        "tokenDim": int(cfg["tokenDim"]),
        "eosThreshold": float(cfg["eosThreshold"]),
        "normalization": "rgb01",
        "queryTokenizer": query,
        "exporter": {
            "torch": torch_version(),
            "created": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            "seed": seed,
        },
        "training": None,
    }


def save_scripted(model: Dove, path: str, meta: Dict[str, Any], tokenizer_json: Optional[str]) -> torch.jit.ScriptModule:
    scripted = torch.jit.script(model.eval())
    extra = {"dove.json": json.dumps(meta, indent=2)}
    if tokenizer_json is not None:
        extra["tokenizer.json"] = tokenizer_json
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.jit.save(scripted, path, _extra_files=extra)
    return scripted


def load_export(pt: str, mode: str) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """An export back in Python -> (module, dove.json). mode 'torchscript': the file itself; 'eager':
    dove.model.Dove rebuilt from its config with the file's weights."""
    extra = {"dove.json": ""}
    scripted = torch.jit.load(pt, map_location="cpu", _extra_files=extra)
    meta = json.loads(extra["dove.json"])
    if mode == "torchscript":
        return scripted.eval(), meta
    model = Dove(meta["config"], meta.get("variant", "dove"))
    # The archive also stores buffers the eager module keeps out of its state dict (derived tables such
    # as rotary frequencies); every parameter and persistent buffer must still be present.
    missing, _ = model.load_state_dict(scripted.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"{pt}: the export lacks {len(missing)} eager entries, e.g. {missing[:3]}")
    return model.eval(), meta


def optimize_for_inference(scripted: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """The Python twin of what the Node runtime does at load with `optimize` (native/module_optimize.cpp,
    docs/API.md): conv weights channels_last (CPU), then torch.jit.freeze with every public method
    preserved and no numerics-changing folds. Changes `scripted`'s conv weights in place; the result is
    inference-only (no parameters). Outputs equal the unfrozen module's within float32 rounding."""
    scripted = scripted.eval()
    with torch.no_grad():
        for _, module in scripted.named_modules():
            if module.original_name == "Conv2d" and module.weight.dim() == 4 and module.weight.device.type == "cpu":
                module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
    methods = [m for m in scripted._c._method_names() if not m.startswith("_")]
    return torch.jit.freeze(scripted, preserved_attrs=methods, optimize_numerics=False)


FIT_MAX_IMAGES = 8000


def fit_autoencoder_order(model: Dove, cfg: Dict[str, Any], folder: str, checkpoint: Optional[str]) -> Dict[str, Any]:
    """--fit-order: measure the block-transform autoencoder's coefficient order on a folder of images
    (dove.transform_ae.fit_order). Up to FIT_MAX_IMAGES files, evenly spread over the sorted listing, each
    resized like the runtime does (short side to the model size, centre crop)."""
    from PIL import Image

    from .config import autoencoder_type
    from .transform_ae import fit_order

    if autoencoder_type(cfg) != "blocktransform":
        raise ConfigError("--fit-order needs a config whose vqgan.type is 'blocktransform'")
    if checkpoint:
        raise ConfigError("--fit-order re-initialises the autoencoder: it cannot be combined with --checkpoint")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".png", ".jpg", ".jpeg", ".webp")))
    if not names:
        raise ConfigError(f"--fit-order: no .png/.jpg/.webp images in {folder}")
    step = max(1, len(names) // FIT_MAX_IMAGES)
    names = names[::step][:FIT_MAX_IMAGES]
    size = int(cfg["imageSize"])
    pixels = []
    for name in names:
        with Image.open(os.path.join(folder, name)) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.LANCZOS)
            left, top = (im.size[0] - size) // 2, (im.size[1] - size) // 2
            pixels.append(torch.frombuffer(bytearray(im.crop((left, top, left + size, top + size)).tobytes()), dtype=torch.uint8))
    images = torch.stack(pixels).reshape(len(pixels), size, size, 3).permute(0, 3, 1, 2).float() / 255.0
    info = fit_order(model.vqgan, images)
    return {"images": info["images"], "folder": os.path.basename(os.path.normpath(folder))}


def export(
    config: str,
    out: str,
    variant: str = "dove",
    seed: int = 0,
    vqgan: Optional[str] = None,
    pythia: Optional[str] = None,
    checkpoint: Optional[str] = None,
    tokenizer: Optional[str] = None,
    onnx: Optional[str] = None,
    fit_order_from: Optional[str] = None,
    compiled: bool = False,
) -> Dict[str, Any]:
    cfg = load_config(config)
    if variant == "qdove" and not tokenizer and pythia:
        # Query ids must index Pythia's own word embedding: use the folder's GPT-NeoX tokenizer.
        candidate = os.path.join(pythia, "tokenizer.json")
        if not os.path.isfile(candidate):
            raise ConfigError(f"--variant qdove with --pythia needs the GPT-NeoX tokenizer: {candidate} does not "
                              "exist, pass --tokenizer tokenizer.json")
        tokenizer = candidate
    tok_json = None
    if tokenizer:
        try:
            tok_json = read_tokenizer(tokenizer)
            tokenizer_info(tok_json)
        except Exception as e:  # json or tokenizers parse errors of a user-supplied file
            raise ConfigError(f"{tokenizer} is not a Hugging Face tokenizer.json: {e}") from e
    model, cfg, tok_json = build_model(cfg, variant, seed, vqgan, pythia, checkpoint, tok_json)
    meta = dove_json(cfg, variant, seed, tok_json)
    if fit_order_from:
        meta["autoencoderFit"] = fit_autoencoder_order(model, cfg, fit_order_from, checkpoint)
    scripted = save_scripted(model, out, meta, tok_json)
    if compiled:
        from .aoti_export import compile_package, package_path

        compile_package(model, scripted, package_path(out))
    if onnx:
        from .onnx_export import export_onnx

        export_onnx(model, onnx)
    return meta


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dove.export", description="Export DOVE / Q-DOVE to TorchScript.")
    p.add_argument("--config", required=True, help="tiny | official-14m | official-70m | path to a config JSON")
    p.add_argument("--variant", choices=["dove", "qdove"], default="dove")
    p.add_argument("--vqgan", help="diffusers VQModel folder (config.json + diffusion_pytorch_model.safetensors|.bin)")
    p.add_argument("--pythia", help="Hugging Face GPT-NeoX folder (config.json + model.safetensors|pytorch_model.bin)")
    p.add_argument("--checkpoint", help="DOVE weights: .safetensors, torch.save state dict, or a DOVE .pt export")
    p.add_argument("--tokenizer", help="tokenizer.json for Q-DOVE queries (default: <--pythia DIR>/tokenizer.json, "
                                       "else a small byte-level BPE trained here)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    p.add_argument("--onnx", help="also write <PREFIX>.encode.onnx and <PREFIX>.decode.onnx (fixed budget)")
    p.add_argument("--fit-order", metavar="DIR", help="blocktransform autoencoders: measure the order of the latent's "
                                                       "coefficients on the images in DIR instead of the built-in power law")
    p.add_argument("--compiled", action="store_true",
                   help="also write <output minus .pt>.aoti.pt2: encode and decode compiled with AOTInductor for this "
                        "machine's CPU (minutes; python -m dove.aoti_export compiles an existing .pt)")
    p.add_argument("-o", "--output", required=True, help="output .pt file")
    args = p.parse_args(argv)
    try:
        meta = export(args.config, args.output, args.variant, args.seed, args.vqgan, args.pythia,
                      args.checkpoint, args.tokenizer, args.onnx, args.fit_order, args.compiled)
    except (ValueError, OSError, RuntimeError) as e:  # ConfigError, PretrainedError are ValueErrors
        print(f"dove.export: error: {e}", file=sys.stderr)
        return 1
    print(f"dove.export: wrote {args.output} ({meta['variant']}, {meta['configName']}, "
          f"{meta['imageSize']}px, {meta['maxTokens']} tokens x {meta['tokenDim']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
