"""AOTInductor packages of encode and decode: a second inference path, compiled ahead of time by
PyTorch's own compiler (docs/MODEL_FORMAT.md, "Compiled package").

python -m dove.aoti_export model.pt [-o model.aoti.pt2]     (an existing export, e.g. after training)
python -m dove.export ... --compiled -o model.pt            (at export)

Either writes `<model>.aoti.pt2` next to `<model>.pt`: one PT2 archive
holding two AOTInductor models, `encode` and `decode`, compiled from the same weights for the CPU it
runs on, with a dynamic batch, and batch-1 models of them where those measured faster (BATCH_ONE_PREFIX). Each model's metadata carries the weights hash of the TorchScript file
(`weights_hash`), so the runtime uses the package only for the file it was compiled from and runs
TorchScript otherwise.

- encode: uint8 pixels (B,S,S,3) -> tokens (B,K,D), eos_logits (B,K), eos_probs (B,K), K = maxTokens.
- decode: tokens float32 (B,K,D), 1 <= K <= maxTokens, lengths int64 (B,) -> uint8 pixels (B,S,S,3).
  The graph cannot check the lengths (their values), so the caller does: 0 <= length <= K.

DOVE only: a Q-DOVE query changes the sequence length, which the compiled graph fixes.
"""
import argparse
import contextlib
import copy
import hashlib
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .model import Dove, to_pixels
from . import small_linear
from .neox import NeoXAttention

# Inductor settings of every package. freezing: weights become constants of the compiled code.
# cpp.weight_prepack: compile_package compiles each method with and without it and keeps the faster,
# measured on the compiling machine (_choose_weight_prepack); INDUCTOR_OPTIONS holds the setting of
# unmeasured compiles (measure=False).
# cpp.dynamic_threads: the generated kernels ask OpenMP for the thread count at run time, so the
# package follows setNumThreads like TorchScript does. Without it inductor writes the compiling
# machine's count into every kernel (`#pragma omp parallel num_threads(2)` here).
# force_layout_optimization: channels_last convolutions. Inductor chooses that layout for CPU graphs
# but turns it off when a convolution's shape is dynamic (the batch is), which left tiny's batch-1
# convolutions on aten's NCHW path and official-70m's on NCHW oneDNN kernels. With it and
# _aten_kernels (GroupNorm), batch-1 encode / decode (ms, package vs frozen TorchScript, compile-time
# measurement, 2 threads, medians of 3): official-70m 1092 vs 1270 / 1998 vs 2140, where without
# them it measured 1728 vs 1410 / 3177 vs 2924; tiny 4.7-7.3 vs 6.5-9.4 / 5.6-8.1 vs 6.8-14.2.
# cpp.threads: the thread count inductor plans its loops for. With cpp.dynamic_threads it is not written
# into the kernels; it decides how many outer loops a kernel spreads over the threads. At the compiling
# machine's 2 threads and the batch's size hint of 2, inductor parallelised only over the batch, so a
# batch-1 call ran those kernels on one thread (tiny's pixel shuffles: 40 and 30 us a call, scalar). Planned
# for PARALLEL_PLAN_THREADS it also splits the next loop (collapse(2)): tiny's batch-1 encode and decode
# 1.04x faster, batch 16 1.00x / 0.99x (bench/compiled/compare.py, 6 rounds, 2 threads, AMD EPYC).
# link_libtorch False: the shared library in the package names no libtorch library. By default it
# would name libtorch.so (which pulls in libtorch_cuda.so, and which the runtime's platform package
# does not ship: docs/PACKAGING.md); the runtime finds libtorch's C shim (aoti_torch_*) and c10 in
# the process instead (native/compiled_model.cpp makes the loaded libtorch_cpu.so / libc10.so global).
PARALLEL_PLAN_THREADS = 8
INDUCTOR_OPTIONS: Dict[str, Any] = {"freezing": True, "cpp.weight_prepack": False, "cpp.dynamic_threads": True,
                                    "cpp.threads": PARALLEL_PLAN_THREADS, "force_layout_optimization": True,
                                    "aot_inductor.link_libtorch": False}
PACKAGE_FORMAT = "dove-encoder/aoti"
PACKAGE_VERSION = 1
# The largest batch a compiled model accepts; larger batches run through TorchScript.
MAX_BATCH = 1024


def package_path(model_path: str) -> str:
    """Where the runtime looks for a model's package: model.pt -> model.aoti.pt2."""
    stem = model_path[:-3] if model_path.endswith(".pt") else model_path
    return f"{stem}.aoti.pt2"


_DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
                torch.bfloat16: "bfloat16", torch.int32: "int32", torch.int64: "int64", torch.uint8: "uint8",
                torch.bool: "bool", torch.int8: "int8", torch.int16: "int16"}


def weights_hash(module: nn.Module) -> str:
    """SHA-256 over every parameter and buffer, by name in sorted order: for each, the UTF-8 line
    `name NUL dtype NUL d0,d1,... NUL`, then the contiguous little-endian bytes. The runtime computes the
    same over the loaded TorchScript module (native/module_wrap.cpp, weightsHash) before optimising it."""
    entries: Dict[str, torch.Tensor] = dict(module.named_parameters())
    entries.update(dict(module.named_buffers()))
    h = hashlib.sha256()
    for name in sorted(entries):
        t = entries[name].detach().cpu().contiguous()
        if t.dtype not in _DTYPE_NAMES:
            raise ValueError(f"weights_hash: {name} has dtype {t.dtype}, which the runtime does not hash")
        shape = ",".join(str(int(s)) for s in t.shape)
        h.update(f"{name}\0{_DTYPE_NAMES[t.dtype]}\0{shape}\0".encode("utf-8"))
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


class EncodePixels(nn.Module):
    """encode_pixels' computation for all maxTokens slots; the runtime slices the budget and picks
    lengths with the TorchScript file's select_lengths."""

    def __init__(self, model: Dove):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens, eos_logits = self.model.encode(images, self.model.max_tokens)
        return tokens, eos_logits, torch.sigmoid(eos_logits)


class DecodePixels(nn.Module):
    """decode_pixels without the argument checks (the runtime makes them before calling it)."""

    def __init__(self, model: Dove):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        m = self.model
        # Zero slots up to maxTokens, as decode pads. Unconditionally: `if k < maxTokens` would need a
        # concrete slot count, and a zero block of maxTokens - k slots made export specialise on that
        # size being 0 or 1 (the compiled graph then read wrong strides for other sizes).
        padded = F.pad(tokens, [0, 0, 0, m.max_tokens - tokens.shape[1]])
        return to_pixels(m.vqgan.decode(m._latents_from_tokens(padded, lengths)).clamp(0.0, 1.0))


# The most keys an attention attends over with the explicit softmax in the compiled graph (CompiledAttention).
EXPLICIT_ATTENTION_MAX_KEYS = 128


class CompiledAttention(NeoXAttention):
    """NeoXAttention for the compiled graph only. Up to EXPLICIT_ATTENTION_MAX_KEYS keys it keeps the
    explicit softmax (NeoXAttention.attend: two batched matmuls and aten's softmax, which _aten_kernels
    keeps out of inductor's code); above, libtorch's fused scaled_dot_product_attention.
    - Inductor's own code for the softmax opens an OpenMP region per query row inside a serial loop: 44 ms
      per call in tiny's batch-16 decode, 62% of it (torch.profiler with cpp.enable_kernel_profile).
    - The fused kernel calls MKL's sgemm per block of queries from inside its own parallel region, 16
      small GEMMs a call in tiny's batch-1 decode: 52 us a call there. The explicit path with aten's
      softmax made tiny's batch-1 encode / decode 1.02x / 1.03x faster, batch 16 1.06x / 1.04x
      (bench/compiled/compare.py, 6 rounds, 2 threads).
    - For long sequences the explicit path materialises every score: 8 heads, batch 16, 512 keys with a
      causal mask took 200 ms a call against the fused kernel's 51 ms; 256 keys at batch 1 tie (0.78 /
      0.80 ms; eager, 2 threads, AMD EPYC).
    The key count is a constant of the graph (only the batch is dynamic). Same inputs, same mask
    convention (True = may attend); outputs agree within float32 rounding (python/tests/test_aoti_export.py)."""

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        if k.shape[-2] <= EXPLICIT_ATTENTION_MAX_KEYS:
            return super().attend(q, k, v, mask)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scaling)


class PointwiseConv(nn.Conv2d):
    """A 1x1 convolution (stride 1, no padding, one group) as a linear over the channels, for the
    compiled graph only. On channels_last activations that is one GEMM with the batch and the pixels as
    rows, which inductor prepacks whatever the batch, where a convolution's weight would stay unpacked
    (_conv_weights_packed_for_every_batch leaves 1x1 kernels alone) and oneDNN would reorder it on every
    call: on top of the packed 3x3 weights, tiny's package ran batch-1 encode 1.03x and decode 1.04x
    faster with it, batch 16 1.00x (bench/compiled/compare.py). Same parameters; outputs agree within
    float32 rounding (another summation order)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x.permute(0, 2, 3, 1), self.weight.flatten(1), self.bias)
        return y.permute(0, 3, 1, 2)


def _is_pointwise(module: nn.Module) -> bool:
    return (type(module) is nn.Conv2d and module.kernel_size == (1, 1) and module.stride == (1, 1)
            and module.padding == (0, 0) and module.dilation == (1, 1) and module.groups == 1)


class SmallPointwiseConv(PointwiseConv):
    """PointwiseConv through dove::linear (small_linear.py), for the batch-1 models only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.permute(0, 2, 3, 1)
        if not small_linear.few_rows(pixels):
            return super().forward(x)
        return small_linear.linear(pixels, self.weight.flatten(1), self.bias).permute(0, 3, 1, 2)


class SmallSameConv(nn.Conv2d):
    """A k x k convolution with stride 1 and "same" zero padding as one dove::linear over its unfolded
    input (im2col: each pixel's k*k neighbourhood of channels as one row), for the batch-1 models only.
    oneDNN's convolution spends set-up time per call like its linear; inductor fuses the padding and the
    unfolding into one kernel. At batch 1 (2 threads, AMD EPYC; python bench/compiled/small_linear.py
    --conv) tiny's 16x16 convolutions took 30-39 us against oneDNN's 44-53 and its 8x8 192-channel ones
    91 against 95 (the unfolding not counted); with them the batch-1 models ran encode 1.02x and
    decode 1.04x faster (bench/compiled/compare.py, 8 rounds). Images of more than SMALL_ROWS pixels
    keep oneDNN's convolution (and no unfolded copy). Same parameters; outputs agree within float32
    rounding (another summation order)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.permute(0, 2, 3, 1)
        if not small_linear.few_rows(pixels):
            return super().forward(x)
        k = self.kernel_size[0]
        r = k // 2
        h, w = x.shape[-2], x.shape[-1]
        padded = F.pad(pixels, (0, 0, r, r, r, r))
        rows = torch.cat([padded[:, i:i + h, j:j + w, :] for i in range(k) for j in range(k)], dim=-1)
        weight = self.weight.permute(0, 2, 3, 1).flatten(1)  # (out, k, k, in): the unfolded order
        return small_linear.linear(rows, weight, self.bias).permute(0, 3, 1, 2)


def _is_same_conv(module: nn.Module) -> bool:
    if type(module) is not nn.Conv2d:
        return False
    k = module.kernel_size
    return (k[0] == k[1] and k[0] % 2 == 1 and k[0] > 1 and module.stride == (1, 1) and module.padding == (k[0] // 2, k[0] // 2)
            and module.dilation == (1, 1) and module.groups == 1 and module.padding_mode == "zeros")


def compiled_copy(model: Dove, pointwise_as_linear: bool, small_linears: bool = False) -> Dove:
    """A copy of `model` for compilation (same parameters, copied): attention layers become
    CompiledAttention and, with `pointwise_as_linear`, 1x1 convolutions PointwiseConv. That is for the
    prepacked variant only: without prepacking a linear is aten's addmm (MKL), which on a CPU where MKL
    runs AVX2 and oneDNN AVX-512 is the slower GEMM (official-70m's addmm decode measured 3% slower
    with PointwiseConv in the bench, node-aoti against onnxruntime-node). With `small_linears` (the
    batch-1 models), linears, pointwise and "same" convolutions (SmallSameConv) call dove::linear instead."""
    fused = copy.deepcopy(model)
    for module in fused.modules():
        if type(module) is NeoXAttention:
            module.__class__ = CompiledAttention
        elif pointwise_as_linear and _is_pointwise(module):
            module.__class__ = SmallPointwiseConv if small_linears else PointwiseConv
        elif small_linears and type(module) is nn.Linear:
            module.__class__ = small_linear.SmallLinear
        elif small_linears and _is_same_conv(module):
            module.__class__ = SmallSameConv
    return fused


@contextlib.contextmanager
def _aten_kernels() -> Iterator[None]:
    """While compiling, GroupNorm and softmax call aten's kernels (through the package's proxy executor:
    libtorch has no C shim for them) instead of inductor's code for them.
    - GroupNorm: inductor's decomposition into reductions reads each group of channels_last activations
      with strides; official-70m's batch-1 encode took 1410 instead of 1728 ms with aten's (compile-time
      measurement).
    - Softmax: see CompiledAttention.
    Inductor keeps lowerings and decompositions in process-wide tables; they are restored on exit."""
    from torch._inductor import decomposition, lowering

    packets = (torch.ops.aten.native_group_norm, torch.ops.aten._softmax)
    overloads = [getattr(packet, name) for packet in packets for name in packet.overloads()]
    saved_decompositions = {op: decomposition.decompositions[op] for op in overloads if op in decomposition.decompositions}
    saved_lowerings = {op: lowering.lowerings[op] for op in overloads if op in lowering.lowerings}
    saved_realized = set(lowering.needs_realized_inputs)
    for op in saved_decompositions:
        del decomposition.decompositions[op]
    for packet in packets:
        lowering.make_fallback(packet, warn=False, override_decomp=True)
    try:
        yield
    finally:
        for op in overloads:
            lowering.lowerings.pop(op, None)
        lowering.lowerings.update(saved_lowerings)
        decomposition.decompositions.update(saved_decompositions)
        lowering.needs_realized_inputs.clear()
        lowering.needs_realized_inputs.update(saved_realized)


@contextlib.contextmanager
def _weight_prepack_patterns(prepack: bool) -> Iterator[None]:
    """A compile inside runs inductor's weight-packing patterns exactly when `prepack` says. Inductor
    registers them once per process, when the first compile with cpp.weight_prepack runs (its freezing
    lazy_init, cached), and then applies them to every later compile whatever its setting, so the
    second variant of compile_package would silently repeat the first. The freezing pattern tables are
    restored on exit and the inits made to run again."""
    from torch._inductor import config
    from torch._inductor.fx_passes import freezing_patterns, mkldnn_fusion

    pack_init = getattr(mkldnn_fusion, "_mkldnn_weight_pack_init", None)  # absent without oneDNN
    with config.patch({"cpp.weight_prepack": False}):
        freezing_patterns.lazy_init()  # the patterns every compile has, registered before the snapshot
    passes = [*freezing_patterns.pass_patterns, freezing_patterns.binary_folding_pass]
    saved = [(p, {k: list(v) for k, v in p.patterns.items()}, {k: list(v) for k, v in p.seen_patterns.items()})
             for p in passes]
    count = len(freezing_patterns.pass_patterns)

    def reset_inits() -> None:
        freezing_patterns.lazy_init.cache_clear()
        if pack_init is not None:
            pack_init.cache_clear()

    reset_inits()
    try:
        with config.patch({"cpp.weight_prepack": prepack}):
            yield
    finally:
        del freezing_patterns.pass_patterns[count:]
        for p, patterns, seen in saved:
            p.patterns.clear()
            p.patterns.update(patterns)
            p.seen_patterns.clear()
            p.seen_patterns.update(seen)
        reset_inits()


@contextlib.contextmanager
def _conv_weights_packed_for_every_batch() -> Iterator[None]:
    """With cpp.weight_prepack, inductor packs a convolution's weight into oneDNN's blocked layout at
    compile time only when the input's shape is static. With a dynamic batch it leaves the plain weight
    and oneDNN reorders it on every call: tiny's 192-channel 3x3 convolution at batch 1 took 153 us that
    way against 97 us packed. For kernels larger than 1x1 the packed layout does not depend on the
    batch (packed for batch 1, 2 or 16: 97-104 us at batch 1, 1196-1203 us at batch 16;
    bench/compiled/conv_pack.py), so inside this context such weights are packed for the batch's size
    hint. 1x1 kernels keep the plain weight, because oneDNN picks their layout by batch (64->192 packed
    for batch 2 and run at 1: 225 us against 23 us); the compiled copy runs them as linears anyway
    (PointwiseConv). A layout that did not match at run time would be reordered by oneDNN, as the plain
    one is: slower, never wrong. With PointwiseConv, tiny's package ran batch-1 encode 1.13x and decode
    1.12x faster, batch 16 1.02x / 1.01x (bench/compiled/compare.py, 2 threads, AMD EPYC)."""
    from torch._inductor.fx_passes import mkldnn_fusion
    from torch.fx.experimental.symbolic_shapes import has_free_symbols

    device_op = getattr(mkldnn_fusion, "CpuMkldnnDeviceOp", None)  # absent without oneDNN
    if device_op is None:
        yield
        return
    original_check = mkldnn_fusion.has_free_symbols
    original_pack = device_op.pack_conv_weight

    def only_the_batch_is_dynamic(value: Any) -> bool:
        return isinstance(value, torch.Size) and len(value) in (4, 5) and not has_free_symbols(value[1:])

    def check(value: Any) -> bool:
        return False if only_the_batch_is_dynamic(value) else original_check(value)

    def pack(self: Any, graph: Any, is_transposed: bool, weight: Any, constant_args: Any, input_size: Any) -> Any:
        if not has_free_symbols(input_size):
            return original_pack(self, graph, is_transposed, weight, constant_args, input_size)
        if is_transposed:
            raise RuntimeError("a transposed convolution with a dynamic batch: DOVE models have none, and "
                               "inductor does not pack those")
        if all(k == 1 for k in weight.meta["val"].shape[2:]):
            return weight
        hinted = [d.node.shape_env.size_hint(d.node.expr) if isinstance(d, torch.SymInt) else d for d in input_size]
        return original_pack(self, graph, is_transposed, weight, constant_args, hinted)

    mkldnn_fusion.has_free_symbols = check
    device_op.pack_conv_weight = pack
    try:
        yield
    finally:
        mkldnn_fusion.has_free_symbols = original_check
        device_op.pack_conv_weight = original_pack


# The rows a linear's weight is packed for (below). oneDNN picks the packed layout by the batch it is
# told: for tiny's 256->1024 linear it keeps the plain layout (its gemm:jit kernel) when packed for 128
# rows and takes the blocked one of its brgemm kernel (AB16b64a) from 256 rows on; every linear shape
# of tiny's decoder gets the blocked layout when packed for 1024 rows (bench/compiled/linear_pack.py,
# AMD EPYC; official-70m's linears were not checked one by one).
LINEAR_PACK_ROWS = 1024


@contextlib.contextmanager
def _linear_weights_packed_for_many_rows() -> Iterator[None]:
    """With cpp.weight_prepack, inductor packs a linear's weight for the rows of the example input
    (with a dynamic batch, its size hint: tiny's 64 tokens times 2), and at that size oneDNN keeps the
    plain layout for most of tiny's linears. The blocked layout it chooses for larger batches is at
    least as fast at the small ones too: at 64 rows (a batch-1 decode), 2 threads, AMD EPYC, packed for
    128 rows against 1024 (us): 256->1024 242 vs 82, 256->768 67 vs 63, 256->256 31 vs 28, 64->256 17 vs
    16, 1024->256 81 vs 81; at 1024 rows the same or up to 1.1x faster (python
    bench/compiled/linear_pack.py; an earlier ad-hoc run read 123 vs 83 for 256->1024). Inside this context float32 weights are
    packed for at least LINEAR_PACK_ROWS rows. The layout is a property of the packed constant; oneDNN
    runs it at any batch, so only speed is at stake."""
    from torch._inductor.fx_passes import mkldnn_fusion

    device_op = getattr(mkldnn_fusion, "CpuMkldnnDeviceOp", None)  # absent without oneDNN
    if device_op is None:
        yield
        return
    original_pack = device_op.pack_linear_weight

    def pack(self: Any, graph: Any, is_lp_weight: bool, transpose_weight_node: Any, batch_size: Any) -> Any:
        node = original_pack(self, graph, is_lp_weight, transpose_weight_node, batch_size)
        # args[1]: the rows, a number here (the size hint, which inductor gives as a sympy Integer).
        if not is_lp_weight and node.target == torch.ops.mkldnn._reorder_linear_weight and not isinstance(node.args[1], torch.SymInt):
            node.args = (node.args[0], max(int(node.args[1]), LINEAR_PACK_ROWS))
        return node

    device_op.pack_linear_weight = pack
    try:
        yield
    finally:
        device_op.pack_linear_weight = original_pack


@contextlib.contextmanager
def _prepacked_layouts() -> Iterator[None]:
    """The packing choices of the prepacked variant: convolutions and linears (above)."""
    with _conv_weights_packed_for_every_batch(), _linear_weights_packed_for_many_rows():
        yield


def _exported(model: Dove, prepack: bool = True, batch_one: bool = False) -> Dict[str, Tuple[nn.Module, Tuple[torch.Tensor, ...], Any, str]]:
    """encode and decode as torch.export takes them, for the variant compiled with or without weight
    prepacking (compiled_copy), or as batch-1 models (batch fixed to 1, dove::linear; prepacked
    convolutions): module, example inputs, dynamic shapes, and the inputs' description."""
    s, k, d = model.image_size, model.max_tokens, model.token_dim
    # Example inputs of batch 2 (export specialises sizes 0 and 1; every size is read from the model)
    # and a slot count below the maximum, so the zero padding is not empty in the traced example.
    rows = 1 if batch_one else 2
    batch = None if batch_one else torch.export.Dim("batch", min=1, max=MAX_BATCH)
    pixels = torch.zeros(rows, s, s, 3, dtype=torch.uint8)
    example_slots = max(1, k - 1)
    tokens = torch.zeros(rows, example_slots, d)
    lengths = torch.full([rows], example_slots, dtype=torch.int64)
    token_dims: Dict[int, Any] = {} if batch is None else {0: batch}
    if k > 1:
        token_dims[1] = torch.export.Dim("slots", min=1, max=k)
    # `dove.inputs` in each model's metadata: what the runtime checks before a call (the compiled
    # code reads its inputs as contiguous buffers of these sizes). "b" is the batch, 1..MAX_BATCH.
    b = "1" if batch_one else "b"
    fused = compiled_copy(model, pointwise_as_linear=prepack or batch_one, small_linears=batch_one)
    return {
        "encode": (EncodePixels(fused), (pixels,), (None if batch is None else {0: batch},), f"uint8[{b},{s},{s},3]"),
        "decode": (DecodePixels(fused), (tokens, lengths), (token_dims or None, None if batch is None else {0: batch}),
                   f"float32[{b},{'1..' if k > 1 else ''}{k},{d}] int64[{b}]"),
    }


# Rounds of the compile-time comparison with the TorchScript path (measure_against_torchscript), and
# the least time each path runs per round (a millisecond call is timed over many calls).
MEASURE_ROUNDS = 3
MEASURE_MIN_MS = 50.0
# Weight prepacking (cpp.weight_prepack) makes inductor call oneDNN's prepacked linears and convolutions
# (fused with their bias, activation or residual add) instead of aten's addmm (MKL) and convolution.
# Which is faster depends on the CPU. On an Intel Xeon, prepacked linears ran tiny's dynamic-batch
# encode 3-4x slower (batch 1: 26-30 vs 7-11 ms, with an earlier option set). On an AMD EPYC (Zen 5),
# where MKL runs its AVX2 kernels and oneDNN its AVX-512 ones, they ran tiny 1.5x faster (batch-1 encode
# 2.4 vs 3.7 ms, batch-16 decode 26.5 vs 44.3 ms; bench/compiled/compare.py, 2 threads, 4 rounds).
PREPACK_CHOICES = (False, True)
PREPACK_ROUNDS = 5
# Batch-1 models: a method compiled again with its batch fixed to 1 and its linears through dove::linear
# (small_linear.py; oneDNN's per-call set-up dominates a linear of 64 rows). The package holds one as
# `batch1_<method>` when it measured faster at batch 1 than the method's dynamic-batch model, and every
# model's metadata lists those methods (dove.batch_one); the runtime calls it for batches of one. On
# tiny (AMD EPYC, 2 threads, bench/compiled/compare.py, 6 rounds) they ran batch-1 encode 1.09x and decode
# 1.14x faster than the dynamic-batch models, while dove::linear in the dynamic-batch models made batch
# 16 0.93x / 0.95x: at 1024 rows and more oneDNN's blocked kernels are the faster GEMM
# (bench/compiled/small_linear.py), hence separate models rather than one operator everywhere.
# A prefix, not a suffix: libtorch's package loader takes every file whose path starts with
# data/aotinductor/<model>, so a model named encode_batch1 would lend its library to encode.
BATCH_ONE_PREFIX = "batch1_"


def batch_one_model(method: str) -> str:
    return BATCH_ONE_PREFIX + method


def expose_libtorch_globally() -> None:
    """A package's library names no libtorch library (link_libtorch False) and finds libtorch's C shim in
    the global scope, where Python's import of torch does not put it; RTLD_NOLOAD opens nothing new."""
    import ctypes
    lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    for name in ("libc10.so", "libtorch_cpu.so"):
        ctypes.CDLL(os.path.join(lib, name), mode=os.RTLD_GLOBAL | os.RTLD_NOLOAD)


def _batch_one_inputs(model: Dove) -> Dict[str, Tuple[torch.Tensor, ...]]:
    """The arguments of the packaged encode and decode that the compile-time measurements time."""
    s, k, d = model.image_size, model.max_tokens, model.token_dim
    pixels = torch.randint(0, 256, (1, s, s, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    tokens = torch.randn(1, k, d, generator=torch.Generator().manual_seed(1))
    return {"encode": (pixels,), "decode": (tokens, torch.full([1], k, dtype=torch.int64))}


def alternating_rounds(calls: Dict[str, Tuple[Callable[..., Any], Tuple[Any, ...]]], rounds: int,
                       min_ms: float = 0.0) -> Dict[str, List[float]]:
    """ms per call of each entry in each round: a warm-up call each, then `rounds` rounds in alternating
    order, so whatever else the machine does lands on all entries alike. In a round an entry runs until
    `min_ms` have passed (at least once) and counts the mean of those calls."""
    times: Dict[str, List[float]] = {name: [] for name in calls}
    order = list(calls)
    with torch.inference_mode():
        for fn, args in calls.values():
            fn(*args)
        for r in range(rounds):
            for name in (order if r % 2 == 0 else order[::-1]):
                fn, args = calls[name]
                n, start = 0, time.perf_counter()
                while n == 0 or (time.perf_counter() - start) * 1e3 < min_ms:
                    fn(*args)
                    n += 1
                times[name].append((time.perf_counter() - start) * 1e3 / n)
    return times


def _median(values: List[float]) -> float:
    """The middle value (the upper one of an even count: rounds are odd here)."""
    return sorted(values)[len(values) // 2]


def alternating_medians(calls: Dict[str, Tuple[Callable[..., Any], Tuple[Any, ...]]], rounds: int,
                        min_ms: float = 0.0) -> Dict[str, float]:
    """The median over rounds of each entry's ms per call (alternating_rounds)."""
    return {name: _median(t) for name, t in alternating_rounds(calls, rounds, min_ms).items()}


def _batch_one_medians(name: str, candidates: Dict[str, Any], args: Tuple[torch.Tensor, ...], work: str) -> Dict[str, float]:
    """Batch-1 ms per call (median of PREPACK_ROUNDS alternating rounds) of each compiled candidate of method `name`."""
    from torch._inductor.package import load_package, package_aoti

    expose_libtorch_globally()
    calls = {}
    for label, files in candidates.items():
        single = os.path.join(work, f"{name}-{label}.pt2")
        package_aoti(single, {name: files})
        calls[label] = (load_package(single, name), args)
    return alternating_medians(calls, PREPACK_ROUNDS)


def _choose_weight_prepack(name: str, variants: Dict[bool, Any], args: Tuple[torch.Tensor, ...], work: str) -> Tuple[bool, str]:
    """The faster of a method's compiled variants (PREPACK_CHOICES) at batch 1 -> (prepack, what was measured)."""
    ms = _batch_one_medians(name, {"prepacked" if prepack else "addmm": files for prepack, files in variants.items()}, args, work)
    return ms["prepacked"] < ms["addmm"], f"batch-1 {name}: prepacked {ms['prepacked']:.1f} ms, addmm {ms['addmm']:.1f} ms"


def measure_against_torchscript(package: str, model: Dove, scripted: torch.jit.ScriptModule,
                                batch_one: Tuple[str, ...] = ()) -> Dict[str, str]:
    """Times batch-1 encode and decode of `package` against the TorchScript methods as the runtime runs
    them without it (optimize_for_inference: frozen, channels_last convolutions), alternating, median of
    MEASURE_ROUNDS rounds after a warm-up, each path at least MEASURE_MIN_MS per round. Neither path is
    certain to win: inductor's kernels made tiny 3-4x faster, while official-70m's frozen TorchScript
    beat its package in every bench row (bench/results/2026-12-06-openmp.md) before INDUCTOR_OPTIONS
    had channels_last convolutions and aten's GroupNorm (_aten_kernels). The package is the default: TorchScript is
    preferred only when its encode + decode sum was the smaller in every round. On a loaded machine
    (another compile, a test run) one call per round measured tiny's package at 436 / 592 ms against
    TorchScript's 424 / 568 ms, 200x their idle times, and the runtime then left a package that is
    1.8x faster unused. The package's side is the model the runtime calls at batch 1: `batch1_<method>`
    for the methods in `batch_one`. -> metadata entries: dove.prefer ("compiled" or "torchscript") and
    dove.measured (the medians)."""
    import io
    from torch._inductor.package import load_package

    from .export import optimize_for_inference

    expose_libtorch_globally()
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)  # optimize_for_inference changes the module it is given
    buffer.seek(0)
    ts = optimize_for_inference(torch.jit.load(buffer, map_location="cpu"))
    inputs = _batch_one_inputs(model)
    pixels, (tokens, lengths), k = inputs["encode"][0], inputs["decode"], model.max_tokens
    rounds = alternating_rounds({
        ("encode", "compiled"): (load_package(package, batch_one_model("encode") if "encode" in batch_one else "encode"), (pixels,)),
        ("encode", "torchscript"): (ts.encode_pixels, (pixels, "fixed", k, 0.5, None, None)),
        ("decode", "compiled"): (load_package(package, batch_one_model("decode") if "decode" in batch_one else "decode"), (tokens, lengths)),
        ("decode", "torchscript"): (ts.decode_pixels, (tokens, lengths)),
    }, MEASURE_ROUNDS, MEASURE_MIN_MS)
    sums = {path: [e + d for e, d in zip(rounds[("encode", path)], rounds[("decode", path)])] for path in ("compiled", "torchscript")}
    torchscript_won = all(t < c for t, c in zip(sums["torchscript"], sums["compiled"]))
    median = {key: _median(t) for key, t in rounds.items()}
    measured = "; ".join(f"batch-1 {op}: compiled {median[(op, 'compiled')]:.1f} ms, torchscript {median[(op, 'torchscript')]:.1f} ms"
                         for op in ("encode", "decode"))
    return {"dove.prefer": "torchscript" if torchscript_won else "compiled",
            "dove.measured": f"{measured} ({torch.get_num_threads()} threads, median of {MEASURE_ROUNDS})"}


def rewrite_metadata(src: str, dst: str, changes: Dict[str, str]) -> None:
    """A copy of package `src` at `dst` whose models' metadata carry `changes`, the compiled code unchanged
    (the runtime reads metadata from the *_metadata.json entries: load_metadata_from_package)."""
    import json
    import zipfile
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("_metadata.json"):
                meta = json.loads(data)
                meta.update(changes)
                data = json.dumps(meta).encode("utf-8")
            zout.writestr(item, data)


def _compile_methods(model: Dove, options: Dict[str, Any], meta: Dict[str, str], work: str, prepack: bool,
                     batch_one: bool = False) -> Dict[str, Any]:
    """encode and decode exported (_exported) and compiled with or without weight prepacking, or as
    batch-1 models (BATCH_ONE_PREFIX; prepacked): method -> compiled files."""
    from torch._inductor import aot_compile

    if batch_one:
        small_linear.load()
    label = "batch1" if batch_one else str(int(prepack))
    compiled: Dict[str, Any] = {}
    with torch.no_grad(), _aten_kernels():
        for name, (module, args, dynamic, inputs) in _exported(model, prepack, batch_one).items():
            ep = torch.export.export(module, args, dynamic_shapes=dynamic)
            with _weight_prepack_patterns(prepack), (_prepacked_layouts() if prepack else contextlib.nullcontext()):
                compiled[name] = aot_compile(ep.module(), args, options={
                    **options,
                    "cpp.weight_prepack": prepack,
                    "aot_inductor.package": True,
                    "aot_inductor.output_path": os.path.join(work, f"{name}-{label}"),
                    "aot_inductor.metadata": dict(meta, **{"dove.method": name, "dove.inputs": inputs,
                                                           "dove.weight_prepack": str(prepack).lower()}),
                })
    return compiled


def compile_package(model: Dove, scripted: torch.jit.ScriptModule, out: str,
                    inductor_options: Optional[Dict[str, Any]] = None, measure: bool = True,
                    batch_one: Optional[bool] = None) -> Dict[str, str]:
    """Compiles encode and decode for this machine's CPU into `out` (a .pt2); -> the shared metadata.
    `inductor_options` adds torch._inductor.config entries to INDUCTOR_OPTIONS (for experiments).
    `measure`: time the package against the TorchScript path here and record which the runtime should
    prefer (measure_against_torchscript); without it the runtime uses the package wherever it fits.
    `batch_one`: batch-1 models (BATCH_ONE_PREFIX): None compiles them when measuring and keeps each
    that measured faster, True keeps both without measuring, False compiles none."""
    if model.is_qdove:
        raise ValueError("compiled packages cover DOVE only (a Q-DOVE query changes the compiled sequence length)")
    from torch._inductor.cpu_vec_isa import pick_vec_isa
    from torch._inductor.package import package_aoti

    model = model.eval()
    meta = {
        "dove.format": PACKAGE_FORMAT,
        "dove.format_version": str(PACKAGE_VERSION),
        "dove.weights_hash": weights_hash(scripted),
        "dove.torch": torch.__version__.split("+")[0],
        "dove.device": "cpu",
        "dove.cpu_isa": str(pick_vec_isa()),
        "dove.max_batch": str(MAX_BATCH),
        "dove.max_tokens": str(model.max_tokens),
    }
    options = {**INDUCTOR_OPTIONS, **(inductor_options or {})}
    choices = PREPACK_CHOICES if measure and "cpp.weight_prepack" not in (inductor_options or {}) else (options["cpp.weight_prepack"],)
    files: Dict[str, Any] = {}
    prepack_measured: List[str] = []
    work = tempfile.mkdtemp(prefix="dove-aoti-")
    try:
        # One compiled copy of the model at a time (official-70m's weights are 750 MB): per variant,
        # both methods; then per method, the faster variant.
        variants: Dict[str, Dict[bool, Any]] = {}
        for prepack in choices:
            for name, compiled_files in _compile_methods(model, options, meta, work, prepack).items():
                variants.setdefault(name, {})[prepack] = compiled_files
        for name, compiled in variants.items():
            chosen = choices[0]
            if len(compiled) > 1:
                chosen, timings = _choose_weight_prepack(name, compiled, _batch_one_inputs(model)[name], work)
                prepack_measured.append(timings)
            files[name] = compiled[chosen]
        if prepack_measured:
            meta["dove.weight_prepack_measured"] = f"{'; '.join(prepack_measured)} ({torch.get_num_threads()} threads, median of {PREPACK_ROUNDS})"
        kept: List[str] = []
        if batch_one or (batch_one is None and measure):
            batch_one_measured: List[str] = []
            for name, compiled_one in _compile_methods(model, options, meta, work, prepack=True, batch_one=True).items():
                if not batch_one:
                    ms = _batch_one_medians(name, {"batch1": compiled_one, "dynamic": files[name]}, _batch_one_inputs(model)[name], work)
                    batch_one_measured.append(f"{name}: batch-1 model {ms['batch1']:.2f} ms, dynamic {ms['dynamic']:.2f} ms")
                    if ms["batch1"] >= ms["dynamic"]:
                        continue
                files[batch_one_model(name)] = compiled_one
                kept.append(name)
            if batch_one_measured:
                meta["dove.batch_one_measured"] = f"{'; '.join(batch_one_measured)} ({torch.get_num_threads()} threads, median of {PREPACK_ROUNDS})"
        # Every model's metadata says which batch-1 models the package holds (set after compiling).
        meta["dove.batch_one"] = ",".join(kept)
        # Written under its final name in a temporary folder (the archive's entries are prefixed with
        # the file's name), then moved into place: a reader never sees half a package.
        target = os.path.abspath(out)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".dove-aoti-", dir=os.path.dirname(target))
        try:
            tmp = os.path.join(staging, os.path.basename(target))
            package_aoti(tmp, files)
            changes = {key: meta[key] for key in ("dove.weight_prepack_measured", "dove.batch_one_measured", "dove.batch_one") if key in meta}
            if measure:
                changes.update(measure_against_torchscript(tmp, model, scripted, tuple(kept)))
                meta.update(changes)
            rewrite_metadata(tmp, tmp + ".measured", changes)
            os.replace(tmp + ".measured", tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return meta


def compile_export(pt: str, out: Optional[str] = None) -> Dict[str, str]:
    """Compiles the package of an existing export (e.g. one the Node Trainer wrote)."""
    from .export import load_export

    scripted, _ = load_export(pt, "torchscript")
    model, _ = load_export(pt, "eager")
    assert isinstance(model, Dove)
    return compile_package(model, scripted, out or package_path(pt))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dove.aoti_export", description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a DOVE export (.pt)")
    p.add_argument("-o", "--output", help="package path (default: <model minus .pt>.aoti.pt2, where the runtime looks)")
    args = p.parse_args(argv)
    start = time.time()
    try:
        meta = compile_export(args.model, args.output)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"dove.aoti_export: error: {e}", file=sys.stderr)
        return 1
    models = ["encode", "decode"] + [batch_one_model(m) for m in meta["dove.batch_one"].split(",") if m]
    print(f"dove.aoti_export: wrote {args.output or package_path(args.model)} ({', '.join(models)}; {meta['dove.cpu_isa']}; "
          f"weights {meta['dove.weights_hash'][:12]}) in {time.time() - start:.0f} s")
    print(f"dove.aoti_export: linears and convolutions {meta.get('dove.weight_prepack_measured', 'not measured')}")
    print(f"dove.aoti_export: batch-1 models {meta.get('dove.batch_one_measured', 'not measured')}")
    print(f"dove.aoti_export: the runtime prefers the {meta['dove.prefer']} path: {meta['dove.measured']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
