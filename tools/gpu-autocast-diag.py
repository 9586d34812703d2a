"""Which TorchScript setting lets a scripted DOVE training forward run under CUDA bf16 autocast?

Each variant runs in a fresh process (the JIT settings are global and graphs are cached): three
steps of forward + backward + an SGD update of the train-mini export on cuda:0 inside
torch.autocast('cuda', bfloat16). Prints one JSON line per variant.
"""
import json
import os
import subprocess
import sys

DEV = os.environ.get("DIAG_DEVICE", "cuda")  # cpu: rehearse the script itself
VARIANTS = ["default", "jit_autocast_off", "optimize_off", "fusers_off", "profiling_off"]


def run(variant: str, model: str) -> None:
    import torch

    if variant == "jit_autocast_off":
        torch._C._jit_set_autocast_mode(False)
    if variant == "fusers_off":
        torch._C._jit_set_texpr_fuser_enabled(False)
        torch._C._jit_override_can_fuse_on_gpu(False)
    if variant == "profiling_off":
        torch._C._jit_set_profiling_executor(False)
    m = torch.jit.load(model, map_location=DEV)
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    x = torch.rand(4, 3, 32, 32, device=DEV)
    steps = []
    try:
        for _ in range(3):
            if variant == "optimize_off":
                with torch.jit.optimized_execution(False), torch.autocast(DEV, dtype=torch.bfloat16):
                    out = m(x, None, None, None)
            else:
                with torch.autocast(DEV, dtype=torch.bfloat16):
                    out = m(x, None, None, None)
            out["loss"].float().backward()
            with torch.no_grad():
                for p in params:
                    if p.grad is not None:
                        p -= 1e-3 * p.grad
                        p.grad = None
            steps.append(round(float(out["loss"]), 5))
        print(json.dumps({"variant": variant, "ok": True, "losses": steps, "param_dtypes": sorted({str(p.dtype) for p in params})}))
    except Exception as e:  # noqa: BLE001 - the point is to report it
        lines = str(e).splitlines()
        print(json.dumps({"variant": variant, "ok": False, "after_steps": len(steps), "error": lines[0], "where": [l for l in lines if "File" in l][-3:]}))


if __name__ == "__main__":
    if len(sys.argv) == 3:
        run(sys.argv[1], sys.argv[2])
    else:
        for v in VARIANTS:
            r = subprocess.run([sys.executable, __file__, v, sys.argv[1]], capture_output=True, text=True, timeout=120)
            print(r.stdout.strip() or json.dumps({"variant": v, "ok": False, "stderr": r.stderr.strip().splitlines()[-3:]}), flush=True)
