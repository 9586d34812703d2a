"""The compiled-package exporter (dove/aoti_export.py) without compiling (that takes minutes; the
compiled fixture, python/dove_fixtures/compiled.py, and test/compiled cover the packages): the weights
hash, and torch.export of the encode / decode graphs for every slot count and batch, which a model
change with data-dependent Python control flow would break."""
import json
import os
import re

import pytest
import torch

from dove.aoti_export import (EXPLICIT_ATTENTION_MAX_KEYS, DecodePixels, EncodePixels, CompiledAttention, PointwiseConv, _aten_kernels, _exported,
                              measure_against_torchscript, package_path, rewrite_metadata, weights_hash)
from dove.config import load_config
from dove.model import Dove
from dove.neox import NeoXAttention
from dove_testutil import perturb_


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = Dove(load_config("tiny"), "dove").eval()
    perturb_(model, 1)
    return model


def test_weights_hash_follows_the_weights_not_the_object(tiny, tmp_path):
    scripted = torch.jit.script(tiny)
    path = tmp_path / "m.pt"
    torch.jit.save(scripted, str(path))
    h = weights_hash(scripted)
    assert len(h) == 64 and h == weights_hash(torch.jit.load(str(path))), "the file hashes as the module it was saved from"
    reloaded = torch.jit.load(str(path))
    with torch.no_grad():
        reloaded.eos_head.bias.add_(1e-3)
    assert weights_hash(reloaded) != h, "any change of any weight changes the hash"


def test_package_path_sits_beside_the_model():
    assert package_path("/a/b/model.pt") == "/a/b/model.aoti.pt2"
    assert package_path("model") == "model.aoti.pt2"


def test_encode_and_decode_export_with_dynamic_batch_and_slots(tiny):
    """The exported graphs (as AOTInductor compiles them, with CompiledAttention and PointwiseConv) equal the model for batches
    and slot counts other than the traced example's, including a full set of slots (no padding)."""
    k, d, s = tiny.max_tokens, tiny.token_dim, tiny.image_size
    graphs = {}
    with torch.no_grad():
        for name, (module, args, dynamic, inputs) in _exported(tiny).items():
            graphs[name] = torch.export.export(module, args, dynamic_shapes=dynamic).module()
            assert inputs.startswith("uint8[b," if name == "encode" else "float32[b,1..")
        gen = torch.Generator().manual_seed(5)
        for b in (1, 3):
            pixels = torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8, generator=gen)
            for got, want in zip(graphs["encode"](pixels), EncodePixels(tiny)(pixels)):
                # PointwiseConv sums in another order than the convolution it replaces: agreement is
                # float32 rounding at the scale of the output (about 8 ulps of its largest value).
                scale = float(want.abs().max())
                assert float((got - want).abs().max()) <= 1e-6 * scale + 1e-6, "encode"
            for slots in (1, k - 1, k):
                tokens = torch.randn(b, slots, d, generator=gen)
                lengths = torch.randint(0, slots + 1, (b,), generator=gen)
                got = graphs["decode"](tokens, lengths)
                want = DecodePixels(tiny)(tokens, lengths)
                assert got.shape == (b, s, s, 3) and got.dtype == torch.uint8
                assert (got.int() - want.int()).abs().max() <= 1, f"decode b={b} slots={slots}"
                assert torch.equal(want, tiny.decode_pixels(tokens, lengths)), "DecodePixels is decode_pixels"


def test_compiled_graphs_attend_with_the_same_results_explicitly_for_short_and_fused_for_long_sequences(tiny, monkeypatch):
    """The graphs handed to AOTInductor use CompiledAttention on a copy; the model itself keeps the explicit
    softmax. CompiledAttention takes the explicit path up to EXPLICIT_ATTENTION_MAX_KEYS keys and libtorch's
    fused kernel above; both agree with the model's attention, with and without a mask."""
    exported = _exported(tiny)
    for name, (module, _, _, _) in exported.items():
        kinds = {type(m) for m in module.modules() if isinstance(m, NeoXAttention)}
        assert kinds == {CompiledAttention}, name
    assert all(type(m) is NeoXAttention for m in tiny.modules() if isinstance(m, NeoXAttention)), "the model is not changed"
    attn = next(m for m in exported["decode"][0].modules() if isinstance(m, CompiledAttention))
    fused_calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **kw: fused_calls.append(a[1].shape[-2]) or sdpa(*a, **kw))
    gen = torch.Generator().manual_seed(3)
    for keys in (7, EXPLICIT_ATTENTION_MAX_KEYS, EXPLICIT_ATTENTION_MAX_KEYS + 1):
        q = torch.randn(2, attn.heads, 5, attn.head_size, generator=gen)
        k = torch.randn(2, attn.heads, keys, attn.head_size, generator=gen)
        v = torch.randn(2, attn.heads, keys, attn.head_size, generator=gen)
        mask = torch.ones(2, 1, 5, keys, dtype=torch.bool)
        mask[..., 5:] = False  # padded keys
        mask[1, ..., 2:] = False
        for m in (None, mask):
            fused = CompiledAttention.attend(attn, q, k, v, m)
            explicit = NeoXAttention.attend(attn, q, k, v, m)
            assert torch.allclose(fused, explicit, atol=1e-5), f"{keys} keys, mask={m is not None}: {(fused - explicit).abs().max()}"
    assert fused_calls == [EXPLICIT_ATTENTION_MAX_KEYS + 1] * 2, "only the longer sequence takes the fused kernel"


def test_compiled_graphs_run_1x1_convolutions_as_linears_with_the_same_results(tiny):
    """Every 1x1 convolution of the copy handed to AOTInductor for the prepacked variant is a
    PointwiseConv (a linear over the channels), of the other variant a convolution; the model keeps its
    convolutions. Both agree on channels_last and contiguous inputs."""
    pointwise = [m for m in tiny.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)]
    assert pointwise and all(type(m) is torch.nn.Conv2d for m in pointwise), "the model is not changed"
    for prepack, expected in ((True, PointwiseConv), (False, torch.nn.Conv2d)):
        for name, (module, _, _, _) in _exported(tiny, prepack).items():
            kinds = {type(m) for m in module.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)}
            assert kinds == {expected}, f"{name}, prepack {prepack}"
    conv = pointwise[0]
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, conv.in_channels, 5, 7, generator=gen)
    for layout in (torch.contiguous_format, torch.channels_last):
        xl = x.to(memory_format=layout)
        assert torch.allclose(PointwiseConv.forward(conv, xl), conv(xl), atol=1e-5), str(layout)


COMPILED_FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "generated", "compiled")


def test_measurement_times_both_paths_and_prefers_torchscript_only_when_it_won_every_round(monkeypatch):
    from dove.export import load_export
    pt = os.path.join(COMPILED_FIXTURES, "micro.pt")
    package = package_path(pt)
    assert os.path.exists(package), f"{package} is missing: run scripts/setup (its fixture step compiles it)"
    scripted, _ = load_export(pt, "torchscript")
    model, _ = load_export(pt, "eager")
    before = {name: (p.clone(), p.is_contiguous()) for name, p in scripted.named_parameters()}
    meta = measure_against_torchscript(package, model, scripted)
    times = re.fullmatch(r"batch-1 encode: compiled ([\d.]+) ms, torchscript ([\d.]+) ms; "
                         r"batch-1 decode: compiled ([\d.]+) ms, torchscript ([\d.]+) ms \((\d+) threads, median of 3\)",
                         meta["dove.measured"])
    assert times is not None, meta["dove.measured"]
    enc_c, enc_t, dec_c, dec_t = (float(times.group(i)) for i in range(1, 5))
    assert min(enc_c, enc_t, dec_c, dec_t) > 0
    assert meta["dove.prefer"] in ("compiled", "torchscript")
    for name, p in scripted.named_parameters():
        assert torch.equal(p, before[name][0]) and p.is_contiguous() == before[name][1], f"{name} changed"

    # The decision, on made-up rounds: TorchScript has to win every round.
    import dove.aoti_export as aoti

    def rounds_of(ms):
        def fake(calls, rounds, min_ms=0.0):
            assert rounds == aoti.MEASURE_ROUNDS and min_ms == aoti.MEASURE_MIN_MS
            return {key: list(ms[key]) for key in calls}
        return fake

    every = {("encode", "compiled"): [2, 2, 2], ("encode", "torchscript"): [1, 1, 1],
             ("decode", "compiled"): [2, 2, 2], ("decode", "torchscript"): [1, 1, 1]}
    monkeypatch.setattr(aoti, "alternating_rounds", rounds_of(every))
    assert measure_against_torchscript(package, model, scripted)["dove.prefer"] == "torchscript"
    once_not = {**every, ("decode", "torchscript"): [1, 9, 1]}
    monkeypatch.setattr(aoti, "alternating_rounds", rounds_of(once_not))
    meta = measure_against_torchscript(package, model, scripted)
    assert meta["dove.prefer"] == "compiled"
    assert meta["dove.measured"].startswith("batch-1 encode: compiled 2.0 ms, torchscript 1.0 ms; batch-1 decode: compiled 2.0 ms, torchscript 1.0 ms")


def test_rewritten_metadata_reaches_every_model_and_leaves_the_rest_byte_for_byte(tmp_path):
    import zipfile
    src, dst = tmp_path / "m.aoti.pt2", tmp_path / "staging"
    with zipfile.ZipFile(src, "w") as z:
        for model in ("encode", "decode"):
            z.writestr(f"m.aoti/data/aotinductor/{model}/x_metadata.json", json.dumps({"dove.method": model}))
            z.writestr(f"m.aoti/data/aotinductor/{model}/x.wrapper.so", bytes(range(256)))
    rewrite_metadata(str(src), str(dst), {"dove.prefer": "torchscript"})
    with zipfile.ZipFile(src) as before, zipfile.ZipFile(dst) as after:
        assert before.namelist() == after.namelist()
        for name in before.namelist():
            if name.endswith("_metadata.json"):
                assert json.loads(after.read(name)) == {**json.loads(before.read(name)), "dove.prefer": "torchscript"}
            else:
                assert after.read(name) == before.read(name)


def test_aten_kernels_swap_inductors_tables_for_group_norm_and_softmax_and_restore_them():
    from torch._inductor import decomposition, lowering

    ops = (torch.ops.aten.native_group_norm.default, torch.ops.aten._softmax.default)
    decomposed = {op: decomposition.decompositions.get(op) for op in ops}
    lowered = {op: lowering.lowerings.get(op) for op in ops}
    realized = set(lowering.needs_realized_inputs)
    assert all(d is not None for d in decomposed.values()), "inductor decomposes GroupNorm and softmax by default"
    with _aten_kernels():
        for op in ops:
            assert op not in decomposition.decompositions, op
            assert lowering.lowerings.get(op) not in (None, lowered[op]), op
    for op in ops:
        assert decomposition.decompositions.get(op) is decomposed[op], op
        assert lowering.lowerings.get(op) is lowered[op], op
    assert set(lowering.needs_realized_inputs) == realized


def test_weight_prepack_patterns_follow_each_compiles_setting(tmp_path):
    """In one process: without, with, then without prepacking again (inductor would keep packing once
    any compile had registered its patterns: the second variant of compile_package repeated the first)."""
    from torch._inductor import aot_compile

    from dove.aoti_export import INDUCTOR_OPTIONS, _weight_prepack_patterns

    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 16)).eval()
    args = (torch.randn(4, 32),)
    packed = []
    for i, prepack in enumerate((False, True, False)):
        with torch.no_grad(), _weight_prepack_patterns(prepack):
            files = aot_compile(torch.export.export(model, args).module(), args, options={
                **INDUCTOR_OPTIONS, "cpp.weight_prepack": prepack, "aot_inductor.package": True,
                "aot_inductor.output_path": str(tmp_path / str(i))})
        wrapper = next(f for f in files if isinstance(f, str) and f.endswith(".wrapper.cpp"))
        with open(wrapper, encoding="utf-8") as f:
            packed.append(f.read().count("aoti_torch_cpu__linear_pointwise("))
    assert packed[0] == 0 and packed[1] == 2 and packed[2] == 0, packed


def test_linear_weights_are_packed_for_many_rows_inside_the_context_only():
    """Inductor's packing call gets at least LINEAR_PACK_ROWS rows for float32 weights, dynamic (the
    size hint) or static; bfloat16 weights and everything after the context keep inductor's choice."""
    from torch._dynamo.source import ConstantSource
    from torch._inductor.fx_passes import mkldnn_fusion
    from torch._inductor.virtualized import V
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    from dove.aoti_export import LINEAR_PACK_ROWS, _linear_weights_packed_for_many_rows

    env = ShapeEnv()
    dynamic = env.create_symintnode(env.create_symbol(128, ConstantSource("rows")), hint=128)
    op = mkldnn_fusion.CpuMkldnnDeviceOp()

    def hints(lp: bool = False):
        graph = torch.fx.Graph()
        weight = graph.placeholder("w")
        return [op.pack_linear_weight(graph, lp, weight, rows).args[1] for rows in (dynamic, 64, 4096)]

    with V.set_aot_compilation(True):
        assert hints() == [128, 64, 4096]
        with _linear_weights_packed_for_many_rows():
            assert hints() == [LINEAR_PACK_ROWS, LINEAR_PACK_ROWS, 4096]
            assert hints(lp=True) == [128, 64, 4096]
        assert hints() == [128, 64, 4096]
