"""Block-transform autoencoder: the from-scratch stand-in for the VQGAN in small DOVE models.

encode: pixels -> 2D DCT of each `block`x`block` block in an opponent colour space (luma, red-green,
yellow-blue), keeping the `latent_channels` block coefficients of largest expected variance (a trainable
1x1 "analysis" convolution after pixel_unshuffle, starting as that DCT) plus a non-linear refinement
-> a second DCT over the grid of blocks, per block coefficient -> all grid x grid x channels
coefficients sorted by their expected variance on natural images and scaled to unit variance -> the
latent, whose channel k holds the k-th group of grid*grid coefficients in that order.
decode mirrors it (inverse orders and DCTs, a trainable "synthesis" convolution starting as the inverse
block DCT, pixel_shuffle, plus a non-linear refinement of the block coefficients).

Why: the latent is ordered from coarse to fine over the whole image, so keeping its first L channels is
a good code for every L on its own (a separable stand-in for a PCA of whole images): on held-out
photographs this untrained code already beats a thumbnail storing the same number of floats at every
length (docs/TRAINING.md, "The embedded model"), and the DOVE token path starts from it (model.py,
transformer.slot_skip). Both refinements end in a zero-initialised convolution, so a fresh autoencoder is
exactly the linear transform and training only adds. They run their 3x3 convolutions at 1/4 and 1/8 of
the input side (space-to-depth first), so a CPU spends its FLOPs on channels rather than pixels;
residual blocks have no normalisation and a zero-initialised second convolution.

Config (``vqgan`` section with ``"type": "blocktransform"``):
  block            side of a transform block (a power of two >= 4); the latent grid is imageSize / block
  latent_channels  block coefficients kept (<= 3 * block^2); the latent has this many channels
  refine_channels  refinement widths per stage: stage 0 at 1/4 of the input side, stage i at 1/(4*2^i);
                   the last stage is at the latent grid, so len = log2(block) - 1
  refine_blocks    residual blocks per refinement stage (encoder and decoder each)
"""
import math
from typing import Any, Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

FIRST_FACTOR = 4

# Opponent colour space (orthonormal rows): luma, red-green, yellow-blue.
OPPONENT = [[1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
            [1 / math.sqrt(2), -1 / math.sqrt(2), 0.0],
            [1 / math.sqrt(6), 1 / math.sqrt(6), -2 / math.sqrt(6)]]
# Expected coefficient variance on natural images (pixels in [-0.5, 0.5]), a power law in the DCT
# frequency radius fitted to multi-scale photo crops: var = scale[o] / (1 + u^2 + v^2)^1.5 for AC and
# dc[o] for DC. Only the order and the rough scale matter: both are starting points that training refines.
AC_SCALE = (1.15, 0.058, 0.079)
DC_VARIANCE = (5.3, 1.5, 4.1)


def dct_matrix(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def block_dct_basis(block: int, channels: int) -> torch.Tensor:
    """-> the `channels` orthonormal block DCT rows (channels, 3*block*block) of largest expected variance.

    Columns follow pixel_unshuffle's channel layout (colour, y, x)."""
    d = dct_matrix(block)
    opp = torch.tensor(OPPONENT, dtype=torch.float64)
    # full[u, v, o, c, y, x] = D[u, y] D[v, x] OPP[o, c]
    full = torch.einsum("uy,vx,oc->uvocyx", d, d, opp).reshape(block * block * 3, 3 * block * block)
    coeffs = block_coefficients(block)
    order = sorted(range(len(coeffs)), key=lambda i: -coeffs[i][0])[:channels]
    return full[order].float()


def block_coefficients(block: int) -> List[Tuple[float, int, int, int]]:
    """(expected variance, u, v, colour) of every block DCT coefficient, in basis row order."""
    out: List[Tuple[float, int, int, int]] = []
    for u in range(block):
        for v in range(block):
            for o in range(3):
                var = DC_VARIANCE[o] if u == 0 and v == 0 else AC_SCALE[o] / (1.0 + u * u + v * v) ** 1.5
                out.append((var, u, v, o))
    return out


# Spectrum over the grid of blocks: block DCs vary smoothly across an image (a thumbnail's power law),
# block details much less so. var(grid frequency p, q) ~ 1 / (1 + p^2 + q^2)^beta, normalised per
# coefficient so that the grid's total variance is unchanged.
GRID_BETA_DC = 1.5
GRID_BETA_AC = 0.5


def global_order(block: int, grid: int, channels: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """-> (permutation of the channels*grid*grid grid-DCT coefficients by decreasing expected variance,
    their expected std in that order)."""
    coeffs = sorted(block_coefficients(block), key=lambda c: -c[0])[:channels]
    p = torch.arange(grid, dtype=torch.float64)[:, None]
    q = torch.arange(grid, dtype=torch.float64)[None, :]
    variances = []
    for var, u, v, _ in coeffs:
        beta = GRID_BETA_DC if u == 0 and v == 0 else GRID_BETA_AC
        w = 1.0 / (1.0 + p * p + q * q) ** beta
        variances.append(var * w / w.sum() * grid * grid)
    flat = torch.stack(variances).flatten()
    order = torch.argsort(flat, descending=True, stable=True)
    return order, flat[order].sqrt().float()


def refine_downsampling(refine_channels: List[int]) -> int:
    return FIRST_FACTOR * 2 ** (len(refine_channels) - 1)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


def _blocks(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(channels) for _ in range(count)])


class DownStage(nn.Module):
    """Stage i > 0 first halves the grid (pixel_unshuffle(2) + 1x1 conv); every stage then runs its blocks."""

    def __init__(self, in_channels: int, out_channels: int, blocks: int, halve: bool):
        super().__init__()
        self.halve = halve
        self.merge: nn.Module = nn.Conv2d(4 * in_channels, out_channels, kernel_size=1) if halve else nn.Identity()
        self.blocks = _blocks(out_channels, blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.halve:
            x = self.merge(F.pixel_unshuffle(x, 2))
        return self.blocks(x)


class UpStage(nn.Module):
    """Mirror of DownStage: blocks, then (all but the last stage) a 1x1 conv + pixel_shuffle(2)."""

    def __init__(self, in_channels: int, out_channels: int, blocks: int, double: bool):
        super().__init__()
        self.double = double
        self.blocks = _blocks(in_channels, blocks)
        self.split: nn.Module = nn.Conv2d(in_channels, 4 * out_channels, kernel_size=1) if double else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        if self.double:
            x = F.pixel_shuffle(self.split(F.silu(x)), 2)
        return x


class RefineEncoder(nn.Module):
    def __init__(self, in_channels: int, channels: List[int], res_blocks: List[int], latent_channels: int):
        super().__init__()
        self.factor = FIRST_FACTOR
        self.conv_in = nn.Conv2d(in_channels * FIRST_FACTOR * FIRST_FACTOR, channels[0], kernel_size=3, padding=1)
        self.stages = nn.ModuleList([
            DownStage(channels[max(i - 1, 0)], channels[i], res_blocks[i], i > 0) for i in range(len(channels))])
        self.conv_out = nn.Conv2d(channels[-1], latent_channels, kernel_size=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(F.pixel_unshuffle(x, self.factor))
        for stage in self.stages:
            h = stage(h)
        return self.conv_out(F.silu(h))


class RefineDecoder(nn.Module):
    def __init__(self, out_channels: int, channels: List[int], res_blocks: List[int], latent_channels: int):
        super().__init__()
        n = len(channels)
        self.factor = FIRST_FACTOR
        self.conv_in = nn.Conv2d(latent_channels, channels[-1], kernel_size=1)
        # Deepest stage first.
        self.stages = nn.ModuleList([
            UpStage(channels[i], channels[max(i - 1, 0)], res_blocks[i], i > 0) for i in range(n - 1, -1, -1)])
        self.conv_out = nn.Conv2d(channels[0], out_channels * FIRST_FACTOR * FIRST_FACTOR, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for stage in self.stages:
            h = stage(h)
        return F.pixel_shuffle(self.conv_out(F.silu(h)), self.factor)


def _both_sides(left: torch.Tensor, x: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """left @ x @ right for a batch x (..., g, g) and matrices left, right (g, g). Both products keep the
    matrix on the right, where matmul folds the batch into one GEMM: `left @ x` broadcasts left into a
    batched matmul that aten runs one (g, g) slice at a time (a select and a clone each: 0.27 of 2.6 ms
    in tiny's batch-1 compiled encode, torch.profiler)."""
    y = torch.matmul(x, right)
    return torch.matmul(y.transpose(-1, -2), left.t()).transpose(-1, -2)


class BlockTransformAutoencoder(nn.Module):
    """Same interface as dove.vqgan.VQGAN: encode(x in [0,1]) -> latents, decode(latents) -> image."""

    def __init__(self, cfg: Dict[str, Any], image_size: int):
        super().__init__()
        block = int(cfg["block"])
        lat = int(cfg["latent_channels"])
        channels = [int(c) for c in cfg["refine_channels"]]
        blocks = [int(b) for b in cfg["refine_blocks"]]
        grid = image_size // block
        self.block = block
        self.channels = lat
        self.grid = grid
        self.analysis = nn.Conv2d(3 * block * block, lat, kernel_size=1, bias=False)
        self.synthesis = nn.Conv2d(lat, 3 * block * block, kernel_size=1, bias=False)
        basis = block_dct_basis(block, lat)
        with torch.no_grad():
            self.analysis.weight.copy_(basis[:, :, None, None])
            self.synthesis.weight.copy_(basis.t()[:, :, None, None])
        order, std = global_order(block, grid, lat)
        # Fixed parts of the transform (buffers, not parameters): the grid DCT and the global order.
        self.register_buffer("grid_dct", dct_matrix(grid).float())
        self.register_buffer("order", order)
        self.register_buffer("inverse_order", torch.argsort(order))
        self.register_buffer("std", std)
        self.encoder = RefineEncoder(3, channels, blocks, lat)
        self.decoder = RefineDecoder(3, channels, blocks, lat)

    def to_global(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Block coefficients (B,C,g,g) -> latent (B,C,g,g): grid DCT, global order, unit variance."""
        b = coefficients.shape[0]
        d = self.grid_dct.to(coefficients.dtype)
        g = _both_sides(d, coefficients, d.t()).reshape(b, -1)
        g = g.index_select(1, self.order) / self.std.to(g.dtype)
        return g.reshape(b, self.channels, self.grid, self.grid)

    def to_blocks(self, latents: torch.Tensor) -> torch.Tensor:
        b = latents.shape[0]
        g = latents.reshape(b, -1) * self.std.to(latents.dtype)
        g = g.index_select(1, self.inverse_order).reshape(b, self.channels, self.grid, self.grid)
        d = self.grid_dct.to(latents.dtype)
        return _both_sides(d.t(), g, d)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = x - 0.5
        return self.to_global(self.analysis(F.pixel_unshuffle(x, self.block)) + self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        c = self.to_blocks(z)
        return F.pixel_shuffle(self.synthesis(c), self.block) + 0.5 + self.decoder(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


@torch.no_grad()
def fit_order(ae: BlockTransformAutoencoder, images: torch.Tensor) -> Dict[str, Any]:
    """Re-derives the fixed parts of a fresh autoencoder from data: which block coefficients it keeps and
    the global order and scale of the latent, from the variances measured on `images` (float (N,3,H,W) in
    [0,1], model-sized) instead of the power-law model above. Measured on the training crops of the
    embedded model this code is 0.4-1.0 dB better at every truncation than the power law's (the blocks'
    detail coefficients vary almost independently of their place in the image, which the model assumes
    they do not). Must run before training: it re-initialises the analysis and synthesis convolutions."""
    block, lat, grid = ae.block, ae.channels, ae.grid
    d = dct_matrix(block)
    opp = torch.tensor(OPPONENT, dtype=torch.float64)
    full = torch.einsum("uy,vx,oc->uvocyx", d, d, opp).reshape(block * block * 3, 3 * block * block).float()
    x = F.pixel_unshuffle(images.float() - 0.5, block)
    coefficients = torch.einsum("kc,nchw->nkhw", full, x)
    keep = torch.argsort(coefficients.var(dim=(0, 2, 3)), descending=True, stable=True)[:lat]
    basis = full[keep]
    g = dct_matrix(grid).float()
    spectrum = torch.matmul(torch.matmul(g, coefficients[:, keep]), g.t()).reshape(images.shape[0], -1)
    variance = spectrum.var(dim=0).clamp_min(1e-12)
    order = torch.argsort(variance, descending=True, stable=True)
    ae.analysis.weight.copy_(basis[:, :, None, None])
    ae.synthesis.weight.copy_(basis.t()[:, :, None, None])
    ae.order.copy_(order)
    ae.inverse_order.copy_(torch.argsort(order))
    ae.std.copy_(variance[order].sqrt())
    return {"images": int(images.shape[0]), "blockCoefficients": [int(i) for i in keep]}
