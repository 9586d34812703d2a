"""Fixtures for the native core tests (test/native) and bench/boundary, written to <out>/core/.

- core.pt: a scripted module (seeded weights) with `forward` plus exported methods covering every
  value kind that crosses the boundary, an in-place method (memory sharing), a slow method (~1 s of
  matmuls, for the event-loop test), a no-op (boundary overhead) and extra files core.json/notes.txt.
- parity.json + parity_input.bin / parity_forward.bin / parity_project.bin: seeded inputs and the
  outputs Python computed for them (little-endian float32), for the Node-vs-Python 1e-6 check.
- state_dict.pt: a torch.save zip archive that is not TorchScript; not_a_model.pt: plain text.
"""
import json
import os
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

IN_FEATURES = 16
HIDDEN = 32
OUT_FEATURES = 8
SLOW_DIM = 256
EXTRA_FILES = {
    "core.json": json.dumps({"fixture": "core", "version": 1, "note": "extra file read at load"}),
    "notes.txt": "plain text extra file\nsecond line ✓",
}


class CoreModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(IN_FEATURES, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, OUT_FEATURES)
        self.register_buffer("slow_weight", torch.randn(SLOW_DIM, SLOW_DIM) / SLOW_DIM ** 0.5)
        self.register_buffer("counter", torch.zeros(1, dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))

    @torch.jit.export
    def project(self, x: torch.Tensor, scale: float, bias: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """A second method: hidden features and scaled output."""
        h = torch.tanh(self.fc1(x))
        return h, self.fc2(h) * scale + bias

    @torch.jit.export
    def echo(
        self,
        t: torch.Tensor,
        f: float,
        i: int,
        flag: bool,
        name: str,
        ints: List[int],
        floats: List[float],
        pair: Tuple[int, str],
        table: Dict[str, torch.Tensor],
        maybe: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, float, int, bool, str, List[int], List[float], Tuple[int, str], Dict[str, float], Optional[torch.Tensor], List[torch.Tensor]]:
        """Returns what it received (dict values summed), so tests see each conversion both ways."""
        sums: Dict[str, float] = {}
        for k, v in table.items():
            sums[k] = float(v.sum().item())
        return t * 2, f * 2.0, i + 1, not flag, name + "!", ints + [len(ints)], floats, pair, sums, maybe, [t, t + 1]

    @torch.jit.export
    def add_inplace(self, x: torch.Tensor, value: float) -> torch.Tensor:
        x.add_(value)
        return x

    @torch.jit.export
    def scale(self, x: torch.Tensor, k: float) -> torch.Tensor:
        return x * k

    @torch.jit.export
    def slow(self, x: torch.Tensor, iters: int) -> torch.Tensor:
        """Real compute for the event-loop test: `iters` chained (B,256)x(256,256) matmuls."""
        for _ in range(iters):
            x = torch.tanh(x @ self.slow_weight)
        return x

    @torch.jit.export
    def tick(self) -> int:
        """Increments a buffer in place: the order of results shows the order calls ran in."""
        self.counter.add_(1)
        return int(self.counter.item())

    @torch.jit.export
    def noise(self, n: int) -> torch.Tensor:
        """Draws from libtorch's default generator (manualSeed test)."""
        return torch.rand(n)

    @torch.jit.export
    def noop(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def nothing(self) -> None:
        pass

    @torch.jit.export
    def dtypes(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        base = torch.arange(6).reshape(2, 3)
        return (
            base.to(torch.float32) / 2,
            base.to(torch.float64) / 4,
            base.to(torch.int32) - 3,
            base.to(torch.int64) * 1000000000000,
            base.to(torch.uint8) + 250,
            base % 2 == 0,
            base.to(torch.float16) / 2,
            base.to(torch.bfloat16) / 2,
        )

    @torch.jit.export
    def transposed(self, x: torch.Tensor) -> torch.Tensor:
        return x.t()

    @torch.jit.export
    def grad_probe(self, x: torch.Tensor) -> bool:
        """True when autograd records: train mode runs with grad, eval mode under InferenceMode."""
        return self.fc1(x).requires_grad

    @torch.jit.export
    def wants_2d(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.fc1.weight.t()


def _write_f32(path: str, t: torch.Tensor) -> None:
    t.detach().contiguous().to(torch.float32).numpy().astype("<f4").tofile(path)


def generate(out_dir: str) -> None:
    out = os.path.join(out_dir, "core")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1234)
    module = CoreModule().eval()
    scripted = torch.jit.script(module)
    scripted.save(os.path.join(out, "core.pt"), _extra_files=EXTRA_FILES)

    gen = torch.Generator().manual_seed(99)
    x = torch.randn(5, IN_FEATURES, generator=gen)
    with torch.no_grad():
        forward = scripted(x)
        hidden, projected = scripted.project(x, 0.5, 3)
    _write_f32(os.path.join(out, "parity_input.bin"), x)
    _write_f32(os.path.join(out, "parity_forward.bin"), forward)
    _write_f32(os.path.join(out, "parity_hidden.bin"), hidden)
    _write_f32(os.path.join(out, "parity_project.bin"), projected)
    torch.manual_seed(7)
    seeded = torch.rand(4).tolist()
    meta = {
        "torch": torch.__version__,
        "seed7Rand4": seeded,
        "inputShape": list(x.shape),
        "forwardShape": list(forward.shape),
        "hiddenShape": list(hidden.shape),
        "projectShape": list(projected.shape),
        "projectArgs": {"scale": 0.5, "bias": 3},
        "slowDim": SLOW_DIM,
        "inFeatures": IN_FEATURES,
        "extraFiles": EXTRA_FILES,
    }
    with open(os.path.join(out, "parity.json"), "w") as f:
        json.dump(meta, f, indent=2)

    torch.save({"weight": torch.zeros(2, 2)}, os.path.join(out, "state_dict.pt"))
    with open(os.path.join(out, "not_a_model.pt"), "w") as f:
        f.write("this is not a model\n")
