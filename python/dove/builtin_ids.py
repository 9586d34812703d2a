"""torch.jit takes a Python object for an aten builtin by its id() (torch.jit._builtins._find_builtin).
torch._ops registers each op packet it creates there (_register_builtin(op, qualname)) without keeping
the object alive, and importing torch._inductor frees two of them (quantized_decomposed::quantize_per_tensor
and ::dequantize_per_tensor, torch 2.11). An object later allocated at the same address, such as the
padding list of a Conv2d being scripted, is then taken for that op, and torch.jit.script fails with
"builtin cannot be used as a value". It bit the Python tests at random: scripting a model after a test
had imported inductor. Keeping a reference to every registered object keeps its id unique for the life
of the process."""
from typing import Callable, List

import torch.jit._builtins as _builtins

_registered: List[object] = []


def keep_registered_builtins_alive() -> None:
    """Idempotent; covers what is registered after the call (dove's package import makes it)."""
    register: Callable[[object, str], None] = _builtins._register_builtin
    if getattr(register, "keeps_alive", False):
        return

    def register_and_keep(fn: object, op: str) -> None:
        _registered.append(fn)
        register(fn, op)

    register_and_keep.keeps_alive = True  # type: ignore[attr-defined]
    _builtins._register_builtin = register_and_keep
