"""Hostile model files for the loader's hardening tests (test/native/model-*.test.ts), written to
<out>/hostile/ by scripts/setup. Each file is what an attacker could hand a user; hostile.json says
what each one does and which refusal (DoveError code) it must meet.

- TorchScript that touches files or the process (the loader must refuse it with UNSAFE_MODEL):
  a DOVE-shaped export whose encode_pixels overwrites ./victim.bin through torch.from_file, and
  small modules with aten::save in a free function, from_file in a submodule's method, inside a
  loop, in __setstate__ (which runs during torch.jit.load), manual_seed, torch.jit.fork.
- Corrupt archives, each one patched field away from a valid file (NOT_TORCHSCRIPT): a tensor whose
  size, stride or offset reaches past its storage, a negative stride reaching before it, a storage
  whose element count exceeds its record, an invalid dtype number (SIGSEGV inside libtorch's own
  unpickler), the same in constants.pkl, a DICT with an odd item count, a memo id of 2^31.
- hang.pt: a method that never returns (bounded exit tests).
"""
import io
import json
import os
import pickletools
import struct
import zipfile
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from dove.config import load_config
from dove.export import build_model, dove_json

Patch = Callable[[bytes], bytes]


def _overwrite(byte: int) -> int:
    """Overwrites ./victim.bin with 16 copies of `byte` and returns 0 (a live result, so that no
    dead-code elimination drops the write)."""
    marker = torch.from_file("victim.bin", True, 16, dtype=torch.uint8)
    marker.fill_(byte)
    return int(marker[0]) - byte


class Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.arange(123, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight.sum()

    @torch.jit.export
    def touch(self, x: torch.Tensor) -> torch.Tensor:
        return x + _overwrite(65)


class Plain(nn.Module):
    """A harmless module whose one parameter (123 floats) and one constant are patched below."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.arange(123, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight.sum()


@torch.jit.script
def write_out(x: torch.Tensor) -> torch.Tensor:
    torch.save(x, "victim.bin")
    return x


class SaveInFunction(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return write_out(x)


class FromFileInSubmodule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = Inner()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.touch(x)


class FromFileInLoop(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(3):
            if i == 2:
                marker = torch.from_file("victim.bin", True, 16, dtype=torch.uint8)
                marker.fill_(66)
                x = x + (int(marker[0]) - 66)
        return x


class FromFileInSetstate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = 2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    @torch.jit.export
    def __getstate__(self) -> Tuple[float, bool]:
        return (self.scale, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[float, bool]) -> None:
        marker = torch.from_file("victim.bin", True, 16, dtype=torch.uint8)
        marker.fill_(67)
        self.scale = state[0] + float(int(marker[0]) - 67)
        self.training = state[1]


class ReseedsGlobalGenerator(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(1)
        return x


def _helper(x: torch.Tensor) -> torch.Tensor:
    return x + 1


class Forks(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fut = torch.jit.fork(_helper, x)
        return torch.jit.wait(fut)


class Hangs(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def spin(self, x: torch.Tensor) -> torch.Tensor:
        """Never returns: the condition stays true (x only grows)."""
        y = x.abs() + 1.0
        while bool(y.sum() > 0.0):
            y = y + 0.0
        return y


class Poisoned(nn.Module):
    """DOVE-shaped (dove.json and the six methods of a real tiny export) whose encode_pixels also
    overwrites ./victim.bin in the caller's working directory."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    @torch.jit.export
    def encode(self, images: torch.Tensor, max_tokens: int, query_ids: Optional[torch.Tensor] = None,
               query_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.inner.encode(images, max_tokens, query_ids, query_mask)

    @torch.jit.export
    def select_lengths(self, eos_logits: torch.Tensor, mode: str, budget: int, threshold: float) -> torch.Tensor:
        return self.inner.select_lengths(eos_logits, mode, budget, threshold)

    @torch.jit.export
    def decode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.inner.decode(tokens, lengths)

    @torch.jit.export
    def encode_pixels(self, images: torch.Tensor, mode: str, budget: int, threshold: float,
                      query_ids: Optional[torch.Tensor] = None, query_mask: Optional[torch.Tensor] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens, probs, lengths = self.inner.encode_pixels(images, mode, budget, threshold, query_ids, query_mask)
        return tokens, probs, lengths + _overwrite(88)

    @torch.jit.export
    def decode_pixels(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.inner.decode_pixels(tokens, lengths)

    def forward(self, images: torch.Tensor, region_mask: Optional[torch.Tensor] = None,
                query_ids: Optional[torch.Tensor] = None, query_mask: Optional[torch.Tensor] = None
                ) -> Dict[str, torch.Tensor]:
        return self.inner.forward(images, region_mask, query_ids, query_mask)


class WithConstant(nn.Module):
    """Saved frozen: its weight (123 floats) becomes a constant in constants.pkl."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.arange(123, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


# ---------------------------------------------------------------------------------------------
# Pickle patching: rewrite one opcode's argument and re-emit the pickle.

def _ops(data: bytes) -> List[Tuple[object, object, int]]:
    return list(pickletools.genops(data))


def _int_op(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if -(2 ** 31) <= value < 2 ** 31:
        return b"J" + struct.pack("<i", value)
    return b"\x8a\x08" + struct.pack("<q", value)


def _replace_op(data: bytes, index: int, replacement: bytes) -> bytes:
    ops = _ops(data)
    start = ops[index][2]
    end = ops[index + 1][2]
    return data[:start] + replacement + data[end:]


def _find_tensor(data: bytes, numel: int) -> Dict[str, int]:
    """Op indices of the storage record ('storage', dtype, key, device, numel) with `numel` elements
    and of its _rebuild_tensor_v2 offset, first size and first stride."""
    ops = _ops(data)
    for i, (op, arg, _) in enumerate(ops):
        if op.name == "BINPERSID":
            # ... numel TUPLE BINPERSID [BINPUT] offset MARK size TUPLE MARK stride TUPLE
            j = i - 1
            while ops[j][0].name != "TUPLE":
                j -= 1
            numel_at = j - 1
            if ops[numel_at][1] != numel:
                continue
            k = i + 1
            if ops[k][0].name in ("BINPUT", "LONG_BINPUT"):
                k += 1
            offset_at = k
            size_at = k + 2  # MARK, size...
            s = size_at
            while ops[s][0].name != "TUPLE":
                s += 1
            stride_at = s + 2
            dtype_at = numel_at - 2
            while ops[dtype_at][0].name not in ("GLOBAL", "BININT1", "BININT", "BININT2"):
                dtype_at -= 1
            return {"numel": numel_at, "offset": offset_at, "size": size_at, "stride": stride_at, "dtype": dtype_at}
    raise ValueError(f"no storage of {numel} elements")


def _patch_int(numel: int, field: str, value: int) -> Patch:
    def patch(data: bytes) -> bytes:
        return _replace_op(data, _find_tensor(data, numel)[field], _int_op(value))
    return patch


def _patch_dtype(numel: int, code: int) -> Patch:
    def patch(data: bytes) -> bytes:
        return _replace_op(data, _find_tensor(data, numel)["dtype"], _int_op(code))
    return patch


def _odd_dict(data: bytes) -> bytes:
    # A MARK, one value and DICT before the STOP: libtorch reads past its stack for the missing value.
    return data[:-1] + b"(K\x01d."


def _big_memo(data: bytes) -> bytes:
    # Memoize the first value under id 2^31 (libtorch would fill the gap with 2^31 entries).
    ops = _ops(data)
    for i, (op, _, _) in enumerate(ops):
        if op.name == "BINPUT":
            return _replace_op(data, i, b"r" + struct.pack("<I", 2 ** 31))
    raise ValueError("no BINPUT")


def _rezip(source: str, target: str, archive_file: str, patch: Patch) -> None:
    with zipfile.ZipFile(source) as z:
        names = z.namelist()
        data = {n: z.read(n) for n in names}
    key = [n for n in names if n.endswith("/" + archive_file)][0]
    data[key] = patch(data[key])
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
        for n in names:
            out.writestr(n, data[n])


def generate(out_dir: str) -> None:
    out = os.path.join(out_dir, "hostile")
    os.makedirs(out, exist_ok=True)
    manifest: Dict[str, Dict[str, str]] = {}

    def save(name: str, module: nn.Module, code: str, what: str, extra: Optional[Dict[str, str]] = None) -> str:
        path = os.path.join(out, name)
        torch.jit.script(module).save(path, _extra_files=extra or {})
        manifest[name] = {"code": code, "what": what}
        return path

    torch.manual_seed(0)
    save("save-in-function.pt", SaveInFunction(), "UNSAFE_MODEL", "aten::save in a free function called by forward")
    save("from-file-in-submodule.pt", FromFileInSubmodule(), "UNSAFE_MODEL", "aten::from_file in a submodule's method")
    save("from-file-in-loop.pt", FromFileInLoop(), "UNSAFE_MODEL", "aten::from_file inside a loop and an if")
    save("from-file-in-setstate.pt", FromFileInSetstate(), "UNSAFE_MODEL", "aten::from_file in __setstate__ (runs at load)")
    save("manual-seed.pt", ReseedsGlobalGenerator(), "UNSAFE_MODEL", "aten::manual_seed (process-wide state)")
    save("fork.pt", Forks(), "UNSAFE_MODEL", "prim::fork (work that outlives the call)")
    save("hang.pt", Hangs(), "", "spin() never returns")

    cfg = load_config("tiny")
    inner, cfg, _ = build_model(cfg, "dove", seed=0)
    inner.eval()
    meta = dove_json(cfg, "dove", 0, None)
    save("poisoned-dove.pt", Poisoned(inner), "UNSAFE_MODEL", "DOVE-shaped; encode_pixels overwrites ./victim.bin",
         {"dove.json": json.dumps(meta)})

    plain = os.path.join(out, "plain.pt")
    torch.jit.script(Plain()).save(plain)
    constant = os.path.join(out, "with-constant.pt")
    torch.jit.freeze(torch.jit.script(WithConstant().eval())).save(constant)
    manifest["plain.pt"] = {"code": "", "what": "the unpatched file the corrupt ones come from"}
    corrupt = [
        ("oob-size.pt", plain, "data.pkl", _patch_int(123, "size", 4096), "size 4096 over a storage of 123 floats"),
        ("oob-offset.pt", plain, "data.pkl", _patch_int(123, "offset", 100), "offset 100, size 123 over 123 floats"),
        ("oob-stride.pt", plain, "data.pkl", _patch_int(123, "stride", 2), "stride 2, size 123 over 123 floats"),
        ("negative-stride.pt", plain, "data.pkl", _patch_int(123, "stride", -1), "stride -1 reaching before the storage"),
        ("huge-size.pt", plain, "data.pkl", _patch_int(123, "size", 2 ** 62), "size 2^62 (overflows bytes)"),
        ("oob-numel.pt", plain, "data.pkl", _patch_int(123, "numel", 4096), "storage of 4096 floats, record of 123"),
        ("negative-numel.pt", plain, "data.pkl", _patch_int(123, "numel", -5), "storage of -5 elements"),
        ("bad-dtype.pt", plain, "data.pkl", _patch_dtype(123, 200), "dtype number 200 (libtorch indexes a table with it)"),
        ("constant-oob.pt", constant, "constants.pkl", _patch_int(123, "size", 5000), "a constant of size 5000 over 123 floats"),
        ("odd-dict.pt", plain, "data.pkl", _odd_dict, "DICT over an odd number of values"),
        ("big-memo.pt", plain, "data.pkl", _big_memo, "memo id 2^31"),
    ]
    for name, source, archive_file, patch, what in corrupt:
        _rezip(source, os.path.join(out, name), archive_file, patch)
        manifest[name] = {"code": "NOT_TORCHSCRIPT", "what": what}
    manifest["with-constant.pt"] = {"code": "", "what": "the unpatched frozen file constant-oob.pt comes from"}
    with open(os.path.join(out, "hostile.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
