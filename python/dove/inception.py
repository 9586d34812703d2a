"""The FID Inception network (pytorch-fid's `InceptionV3`, block 3 = 2048-d pool features) without
torchvision, and a converter from the standard weights file to a TorchScript feature extractor.

The standard weights are TensorFlow's 2015-12-05 Inception ported by pytorch-fid:
`pt_inception-2015-12-05-6726825d.pth` from the pytorch-fid GitHub releases ("fid_weights"). The user
downloads that file once; this module turns it into `inception.pt` with one method

    features(images) -> (B, 2048) float32

where `images` is float32 (B,3,H,W) in [0,1] or uint8 (B,H,W,3) (pixels straight from sharp). Images
are resized exactly as pytorch-fid does (bilinear to 299x299, align_corners=False, no antialias) and
scaled to [-1, 1]. Usage:

    python -m dove.inception --weights pt_inception-2015-12-05-6726825d.pth -o inception.pt
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from typing import Dict, List, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT = "dove-encoder/fid-inception"
FORMAT_VERSION = 1
FEATURE_DIM = 2048
WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)

Pad = Union[int, Tuple[int, int]]


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3, as TensorFlow's Inception) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: Pad, stride: int = 1, padding: Pad = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class FIDInceptionA(nn.Module):
    # FID patch: TensorFlow's average pool does not count the zero padding.
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(self.branch7x7dbl_3(self.branch7x7dbl_2(bd))))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class FIDInceptionE(nn.Module):
    # FID patch: Mixed_7b averages without padding; Mixed_7c max-pools (as the TF graph does).
    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([b1, b3, bd, self.branch_pool(pooled)], 1)


class FIDInception(nn.Module):
    """Attribute names equal torchvision's Inception3 so the standard state dict loads as is."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, 32)
        self.Mixed_5c = FIDInceptionA(256, 64)
        self.Mixed_5d = FIDInceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, 128)
        self.Mixed_6c = FIDInceptionC(768, 160)
        self.Mixed_6d = FIDInceptionC(768, 160)
        self.Mixed_6e = FIDInceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)

    @torch.jit.export
    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = to_unit_nchw(images)
        # pytorch-fid: bilinear to 299 (align_corners False, no antialias), then [0,1] -> [-1,1].
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        x = self.Mixed_6a(x)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def to_unit_nchw(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B,H,W,3) -> float (B,3,H,W)/255; float (B,3,H,W) in [0,1] passes through."""
    if images.dim() != 4:
        raise ValueError("Expected images of shape (B,3,H,W) float or (B,H,W,3) uint8 but received " + str(images.shape))
    if images.dtype == torch.uint8:
        if images.shape[3] != 3:
            raise ValueError("Expected uint8 images of shape (B,H,W,3) but received " + str(images.shape))
        return images.permute(0, 3, 1, 2).float() / 255.0
    if images.shape[1] != 3:
        raise ValueError("Expected float images of shape (B,3,H,W) but received " + str(images.shape))
    return images.float()


def load_weights(path: str) -> Dict[str, torch.Tensor]:
    """Reads the standard weights file; errors name the file and what was expected."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: not found. Download the FID Inception weights from {WEIGHTS_URL} and pass the file with --weights"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for non-checkpoint files
        raise ValueError(f"{path}: not a PyTorch state dict file ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict (name -> tensor) but found {type(state).__name__}")
    return state


def build_from_state_dict(state: Dict[str, torch.Tensor], source: str = "state dict") -> FIDInception:
    model = FIDInception()
    own = model.state_dict()
    # The file also holds the 1008-way classifier (fc.*) and, for torchvision-style dicts,
    # AuxLogits.*; the 2048-d pool features need neither.
    wanted = {k: v for k, v in state.items() if k in own}
    missing = sorted(set(own) - set(wanted))
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{source}: not the FID Inception weights: {len(missing)} expected tensors are missing ({shown})"
        )
    for key, value in wanted.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ValueError(
                f"{source}: tensor {key} has shape {tuple(value.shape)} but the FID Inception expects {tuple(own[key].shape)}"
            )
    model.load_state_dict(wanted, strict=True)
    return model.eval()


def export(model: FIDInception, out_path: str, meta: Dict[str, object]) -> None:
    scripted = torch.jit.script(model.eval())
    info = {"format": FORMAT, "formatVersion": FORMAT_VERSION, "featureDim": FEATURE_DIM, "resize": 299,
            "normalization": "rgb01", "torch": torch.__version__}
    info.update(meta)
    tmp = out_path + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    scripted.save(tmp, _extra_files={"fid.json": json.dumps(info, indent=2)})
    os.replace(tmp, out_path)


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert(weights: str, out_path: str) -> None:
    model = build_from_state_dict(load_weights(weights), source=weights)
    export(model, out_path, {"weightsFile": os.path.basename(weights), "weightsSha256": sha256(weights)})


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m dove.inception", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="pt_inception-2015-12-05-*.pth")
    parser.add_argument("-o", "--out", required=True, help="output TorchScript file, e.g. inception.pt")
    args = parser.parse_args(argv)
    try:
        convert(args.weights, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} (features(images) -> (B, {FEATURE_DIM}))")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
