"""dove::linear (native/small_linear.cpp, the addon's own source built by dove/small_linear.py) and the
batch-1 graphs that call it (dove/aoti_export.py, _exported(batch_one=True))."""
import pytest
import torch
import torch.nn.functional as F

from dove import small_linear
from dove.aoti_export import BATCH_ONE_PREFIX, DecodePixels, EncodePixels, SmallSameConv, _exported, _is_same_conv, batch_one_model
from dove.config import load_config
from dove.model import Dove
from dove_testutil import perturb_


@pytest.fixture(scope="module", autouse=True)
def op():
    small_linear.load()


@pytest.mark.parametrize("rows,k,n", [(64, 256, 1024), (64, 1024, 256), (1, 3, 1), (65, 64, 65), (130, 48, 192), (7, 256, 1), (1024, 64, 100)])
def test_linear_equals_f_linear_for_any_rows_and_columns(rows, k, n):
    gen = torch.Generator().manual_seed(rows * 7 + n)
    x, w, b = torch.randn(rows, k, generator=gen), torch.randn(n, k, generator=gen), torch.randn(n, generator=gen)
    want = F.linear(x, w, b)
    got = small_linear.linear(x, w, b)
    assert got.shape == want.shape
    # Another summation order than MKL / oneDNN: float32 rounding of K products.
    tolerance = 2e-6 * k ** 0.5 * float(want.abs().max()) + 1e-6
    assert float((got - want).abs().max()) <= tolerance
    assert float((small_linear.linear(x, w, None) - F.linear(x, w)).abs().max()) <= tolerance, "without a bias"


def test_linear_keeps_leading_dimensions_reads_strided_input_and_takes_no_rows():
    gen = torch.Generator().manual_seed(1)
    w, b = torch.randn(96, 40, generator=gen), torch.randn(96, generator=gen)
    x = torch.randn(2, 40, 3, 5, generator=gen).permute(0, 2, 3, 1)  # (2,3,5,40), not contiguous
    got = small_linear.linear(x, w, b)
    assert got.shape == (2, 3, 5, 96)
    assert torch.allclose(got, F.linear(x, w, b), atol=1e-5)
    assert small_linear.linear(torch.zeros(0, 40), w, b).shape == (0, 96)


def test_pack_weight_blocks_columns_by_64_and_pads_the_last_block_with_zeros():
    w = torch.arange(70 * 3, dtype=torch.float32).reshape(70, 3)
    packed = small_linear.pack_weight(w)
    assert packed.shape == (2, 3, 64) and packed.is_contiguous()
    assert torch.equal(packed[0], w[:64].t()) and torch.equal(packed[1, :, :6], w[64:].t())
    assert not packed[1, :, 6:].any()


@pytest.mark.parametrize("case,message", [
    ("packed too small", r"expected a packed weight of \[2, 8, 64\]"),
    ("other K", r"expected a packed weight of \[2, 9, 64\]"),
    ("out_features beyond the blocks", r"expected a packed weight of \[3, 8, 64\]"),
    ("zero out_features", r"out_features must be at least 1"),
    ("float64 input", r"float32 input and weight"),
    ("bias of other length", r"expected a float32 bias of \[70\]"),
    ("int bias", r"expected a float32 bias"),
    ("scalar input", r"last dimension of at least 1"),
])
def test_linear_refuses_sizes_and_dtypes_that_do_not_match_before_reading_memory(case, message):
    """A package is untrusted input: its calls of the operator are checked, not trusted."""
    x, packed, bias, n = torch.randn(4, 8), small_linear.pack_weight(torch.randn(70, 8)), torch.randn(70), 70
    if case == "packed too small":
        packed = packed[:, :, :32]
    elif case == "other K":
        x = torch.randn(4, 9)
    elif case == "out_features beyond the blocks":
        n = 129
    elif case == "zero out_features":
        n = 0
    elif case == "float64 input":
        x = x.double()
    elif case == "bias of other length":
        bias = torch.randn(71)
    elif case == "int bias":
        bias = torch.zeros(70, dtype=torch.int32)
    elif case == "scalar input":
        x = torch.tensor(1.0)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.dove.linear(x, packed, bias, n)


def test_batch_one_graphs_fix_the_batch_call_dove_linear_and_equal_the_model():
    """tiny's dynamic-batch graphs hold 22 / 27 aten linears and 5 convolutions each; its batch-1 graphs none."""
    torch.manual_seed(0)
    tiny = Dove(load_config("tiny"), "dove").eval()
    perturb_(tiny, 1)
    k, d, s = tiny.max_tokens, tiny.token_dim, tiny.image_size
    assert batch_one_model("encode") == BATCH_ONE_PREFIX + "encode"
    assert not batch_one_model("encode").startswith("encode"), "libtorch's loader matches a model's files by prefix"
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        exported = _exported(tiny, batch_one=True)
        assert exported["encode"][3] == f"uint8[1,{s},{s},3]"
        assert exported["decode"][3] == f"float32[1,1..{k},{d}] int64[1]"
        graphs = {}
        for name, (module, args, dynamic, _) in exported.items():
            graph = torch.export.export(module, args, dynamic_shapes=dynamic)
            assert any(n.target is torch.ops.dove.linear.default for n in graph.graph.nodes), name
            assert not any(n.target is torch.ops.aten.linear.default for n in graph.graph.nodes), name
            # tiny's autoencoder has only "same" and 1x1 convolutions: all of them unfolded or pointwise.
            assert not any(n.target is torch.ops.aten.conv2d.default for n in graph.graph.nodes), name
            graphs[name] = graph.module()
        pixels = torch.randint(0, 256, (1, s, s, 3), dtype=torch.uint8, generator=gen)
        for got, want in zip(graphs["encode"](pixels), EncodePixels(tiny)(pixels)):
            assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max()) + 1e-6, "encode"
        for slots in (1, k):
            tokens = torch.randn(1, slots, d, generator=gen)
            lengths = torch.tensor([slots])
            got = graphs["decode"](tokens, lengths)
            assert (got.int() - DecodePixels(tiny)(tokens, lengths).int()).abs().max() <= 1, f"decode slots={slots}"


@pytest.mark.parametrize("k,cin,cout,size", [(3, 48, 64, 16), (3, 192, 192, 8), (5, 4, 70, 9), (3, 3, 1, 5)])
def test_same_convolutions_as_one_linear_over_unfolded_pixels_equal_the_convolution(k, cin, cout, size):
    gen = torch.Generator().manual_seed(k * cin + cout)
    conv = torch.nn.Conv2d(cin, cout, k, padding=k // 2)
    with torch.no_grad():
        for p in conv.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    assert _is_same_conv(conv)
    small = torch.nn.Conv2d(cin, cout, k, padding=k // 2)
    small.load_state_dict(conv.state_dict())
    small.__class__ = SmallSameConv
    x = torch.randn(2, cin, size, size + 1, generator=gen)
    with torch.no_grad():
        want = conv(x)
        for layout in (torch.contiguous_format, torch.channels_last):
            got = small(x.to(memory_format=layout))
            assert got.shape == want.shape
            assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max()) + 1e-6, str(layout)


def test_only_stride_1_same_padded_ungrouped_convolutions_are_unfolded():
    assert _is_same_conv(torch.nn.Conv2d(4, 4, 3, padding=1))
    for conv in (torch.nn.Conv2d(4, 4, 3, stride=2, padding=1), torch.nn.Conv2d(4, 4, 3), torch.nn.Conv2d(4, 4, 1),
                 torch.nn.Conv2d(4, 4, 3, padding=1, groups=2), torch.nn.Conv2d(4, 4, 3, padding=2, dilation=2),
                 torch.nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), torch.nn.Conv2d(4, 4, (3, 1), padding=(1, 0))):
        assert not _is_same_conv(conv), conv


def test_more_rows_than_small_rows_stay_with_oneDNN_in_the_exported_graph():
    """Past SMALL_ROWS the set-up dove::linear saves weighs little, and an unfolded convolution of a large
    image would be a huge matrix: those export as aten's linear / convolution (inductor prepacks them)."""
    lin = small_linear.SmallLinear(8, 4)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1)
    conv.__class__ = SmallSameConv
    side = int(small_linear.SMALL_ROWS ** 0.5)
    for module, few, many in ((lin, torch.randn(1, small_linear.SMALL_ROWS, 8), torch.randn(1, small_linear.SMALL_ROWS + 1, 8)),
                              (conv, torch.randn(1, 3, side, side), torch.randn(1, 3, side + 1, side + 1))):
        for x, dove_calls in ((few, 1), (many, 0)):
            graph = torch.export.export(module, (x,)).graph
            assert sum(n.target is torch.ops.dove.linear.default for n in graph.nodes) == dove_calls, (type(module), x.shape)
            with torch.no_grad():
                want = F.linear(x, lin.weight, lin.bias) if module is lin else F.conv2d(x, conv.weight, conv.bias, padding=1)
                assert torch.allclose(module(x), want, atol=1e-5)
