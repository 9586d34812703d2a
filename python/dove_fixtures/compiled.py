"""Compiled-package fixtures (test/api/compiled.test.ts, test/native/compiled.test.ts), in
test/fixtures/generated/compiled/:

- micro.pt + micro.aoti.pt2: a seeded DOVE export of `micro` (tiny's architecture, scaled down so
  compiling takes minutes, not tens of them) and its AOTInductor package, compiled here once
  (scripts/setup regenerates fixtures only when python/dove changes).
- other-weights.pt + other-weights.aoti.pt2: the same architecture with other weights, beside a copy of
  micro's package: a package that does not match its model (the runtime must not use it).
- wrong-device.aoti.pt2 / wrong-isa.aoti.pt2: micro's package with its metadata saying cuda / an
  instruction set no CPU has (the loader must refuse them).
- micro-vqgan.pt + micro-vqgan.aoti.pt2: the same scale with official's VQGAN autoencoder, whose
  GroupNorms the package runs through aten (its proxy executor), not compiled code. Compiled with
  weight prepacking (oneDNN's prepacked linears and convolutions) and with batch-1 models (their
  linears through dove::linear), micro without either: compile_package picks by measurement, so the
  runtime must run all of them.
- bad-batch-one.pt / missing-batch-one.pt: copies of micro.pt beside micro's package with dove.batch_one
  naming a method that does not exist / a batch-1 model the package lacks (the runtime must not use them).
- compiled.json: what each file is, and the sizes; atenGroupNorms: micro-vqgan's GroupNorm calls per
  compiled model; smallLinears: the dove::linear calls per package and model; prepackedLinears: the oneDNN prepacked linear calls per package and model;
  packedConvolutions: the oneDNN convolution calls with a packed weight, likewise.

When the package cannot be compiled (a model change torch.export cannot trace), compiled.json records
the error instead, and the tests fail with it rather than skip.
"""
import json
import os
import re
import shutil
import traceback
import zipfile
from typing import Any, Callable, Dict

import torch

from dove.config import autoencoder_type, clone, load_config
from dove.export import build_model, dove_json


def micro_config(base: str = "tiny") -> Dict[str, Any]:
    """`base` scaled down: 16 px, 16 tokens of 16 floats, an autoencoder of 8-16 channels, 1+1 layers."""
    cfg = clone(load_config(base))
    cfg["name"] = "micro" if base == "tiny" else f"micro-{base}"
    cfg["imageSize"] = 16
    cfg["maxTokens"] = 16
    cfg["tokenDim"] = 16
    if autoencoder_type(cfg) == "blocktransform":
        # one latent channel per token slot, as tiny has
        cfg["vqgan"].update(latent_channels=cfg["maxTokens"], refine_channels=[8, 16])
    else:
        cfg["vqgan"].update(block_out_channels=[8, 16, 16], latent_channels=4, norm_num_groups=4)
    cfg["transformer"].update(hidden_size=32, num_attention_heads=2, intermediate_size=64,
                              generator_layers=1, decoder_layers=1)
    return cfg


def _save(model: torch.nn.Module, meta: Dict[str, Any], path: str) -> torch.jit.ScriptModule:
    scripted = torch.jit.script(model)
    torch.jit.save(scripted, path, _extra_files={"dove.json": json.dumps(meta, indent=2)})
    return scripted


def _per_model(package: str, wanted: Callable[[str], bool], count: Callable[[bytes], int]) -> Dict[str, int]:
    """Per model of `package` (its aotinductor/<model>/ files), the sum of `count` over the files `wanted` names."""
    counts: Dict[str, int] = {}
    with zipfile.ZipFile(package) as z:
        for name in z.namelist():
            parts = name.split("/")
            if len(parts) >= 3 and parts[-3] == "aotinductor" and wanted(name):
                counts[parts[-2]] = counts.get(parts[-2], 0) + count(z.read(name))
    return counts


def proxy_calls(package: str, target: str) -> Dict[str, int]:
    """Per model of `package`, the `target` operator calls its proxy executor makes (the extern-kernel
    nodes in `<model>/*.json`), so a test notices when they are compiled in again."""
    def calls(data: bytes) -> int:
        nodes = json.loads(data).get("nodes", [])
        return sum(1 for n in nodes if n.get("node", {}).get("target") == target)

    return _per_model(package, lambda name: name.endswith(".json") and not name.endswith("_metadata.json"), calls)


def prepacked_linears(package: str) -> Dict[str, int]:
    """Per model of `package`, the oneDNN prepacked linear calls in its generated wrapper code."""
    return _per_model(package, lambda name: name.endswith(".wrapper.cpp"),
                      lambda data: data.decode("utf-8", "replace").count("aoti_torch_cpu__linear_pointwise("))


def packed_convolutions(package: str) -> Dict[str, int]:
    """Per model of `package`, the oneDNN convolution calls whose weight is a packed (mkldnn-layout)
    constant of its generated wrapper code."""
    def count(data: bytes) -> int:
        code = data.decode("utf-8", "replace")
        names = dict(re.findall(r'constants_info_\[(\d+)\]\.name = "(\w+)";', code))
        packed = {names[i] for i in re.findall(r"constants_info_\[(\d+)\]\.layout = static_cast<int32_t>\(cached_torch_layout__mkldnn\);", code) if i in names}
        unary = re.findall(r"aoti_torch_cpu_mkldnn__convolution_pointwise\(\w+, (\w+),", code)
        binary = re.findall(r"aoti_torch_cpu_mkldnn__convolution_pointwise_binary_?\(\w+, \w+, (\w+),", code)
        return sum(1 for weight in unary + binary if weight in packed)

    return _per_model(package, lambda name: name.endswith(".wrapper.cpp"), count)


def generate(out_dir: str) -> None:
    from dove.aoti_export import compile_package, package_path, rewrite_metadata

    out = os.path.join(out_dir, "compiled")
    os.makedirs(out, exist_ok=True)
    cfg = micro_config()
    info: Dict[str, Any] = {"config": cfg, "files": {}, "error": None}
    model, cfg, _ = build_model(cfg, "dove", seed=3)
    micro_pt = os.path.join(out, "micro.pt")
    scripted = _save(model, dove_json(cfg, "dove", 3, None), micro_pt)
    info["files"]["micro.pt"] = "seeded micro DOVE export"
    try:
        # Unmeasured: which path a micro model's timings favour is noise, and the tests choose the path.
        meta = compile_package(model, scripted, package_path(micro_pt), measure=False)
    except Exception:  # recorded for the tests to report; the other fixtures still get written
        info["error"] = traceback.format_exc(limit=8)
    else:
        info["files"]["micro.aoti.pt2"] = "its compiled package"
        info["metadata"] = meta
        other, _, _ = build_model(cfg, "dove", seed=4)
        other_pt = os.path.join(out, "other-weights.pt")
        _save(other, dove_json(cfg, "dove", 4, None), other_pt)
        shutil.copyfile(package_path(micro_pt), package_path(other_pt))
        info["files"]["other-weights.pt"] = "same architecture, other weights, beside a copy of micro's package"
        rewrite_metadata(package_path(micro_pt), os.path.join(out, "wrong-device.aoti.pt2"), {"dove.device": "cuda"})
        info["files"]["wrong-device.aoti.pt2"] = "micro's package, metadata dove.device = cuda"
        rewrite_metadata(package_path(micro_pt), os.path.join(out, "wrong-isa.aoti.pt2"), {"dove.cpu_isa": "avx512 no_such_isa"})
        info["files"]["wrong-isa.aoti.pt2"] = "micro's package, metadata naming an unknown instruction set"
        slower_pt = os.path.join(out, "slower.pt")
        shutil.copyfile(micro_pt, slower_pt)
        rewrite_metadata(package_path(micro_pt), package_path(slower_pt), {
            "dove.prefer": "torchscript",
            "dove.measured": "batch-1 encode: compiled 9.0 ms, torchscript 6.0 ms; batch-1 decode: compiled 9.0 ms, "
                             "torchscript 6.0 ms (2 threads, median of 3)"})
        info["files"]["slower.pt"] = "a copy of micro.pt beside its package, measured slower than TorchScript"
        # dove.batch_one from a package nobody should trust: a method that is not one, a model that is not there.
        for stem, value in (("bad-batch-one", "encode,train"), ("missing-batch-one", "decode")):
            shutil.copyfile(micro_pt, os.path.join(out, f"{stem}.pt"))
            rewrite_metadata(package_path(micro_pt), package_path(os.path.join(out, f"{stem}.pt")), {"dove.batch_one": value})
            info["files"][f"{stem}.pt"] = f"a copy of micro.pt beside its package, metadata dove.batch_one = {value}"
        # official's VQGAN autoencoder: the GroupNorms the package runs through aten (proxy executor).
        vq_model, vq_cfg, _ = build_model(micro_config("official-14m"), "dove", seed=5)
        vq_pt = os.path.join(out, "micro-vqgan.pt")
        vq_scripted = _save(vq_model, dove_json(vq_cfg, "dove", 5, None), vq_pt)
        info["files"]["micro-vqgan.pt"] = "seeded micro DOVE export with official's VQGAN autoencoder (GroupNorm)"
        try:
            compile_package(vq_model, vq_scripted, package_path(vq_pt), inductor_options={"cpp.weight_prepack": True},
                            measure=False, batch_one=True)
        except Exception:
            info["error"] = traceback.format_exc(limit=8)
        else:
            info["files"]["micro-vqgan.aoti.pt2"] = "its compiled package, with weight prepacking and batch-1 models"
            info["atenGroupNorms"] = proxy_calls(package_path(vq_pt), "aten::native_group_norm")
            info["smallLinears"] = {name: proxy_calls(package_path(os.path.join(out, name)), "dove::linear")
                                    for name in ("micro.pt", "micro-vqgan.pt")}
            info["prepackedLinears"] = {name: prepacked_linears(package_path(os.path.join(out, name)))
                                        for name in ("micro.pt", "micro-vqgan.pt")}
            info["packedConvolutions"] = {name: packed_convolutions(package_path(os.path.join(out, name)))
                                          for name in ("micro.pt", "micro-vqgan.pt")}
    with open(os.path.join(out, "compiled.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
