"""Seeded fixtures for the evaluation area (test/eval/*.test.ts, python/tests/test_fid*.py).

Writes under <out>/eval/:
- inception-random.pt: the FID Inception export (dove.inception) of a random state dict, converted
  from a `.pth` file exactly as users convert the real weights; fid-images/*.png and
  inception-reference.json: pool features of those PNGs from the pytorch-fid package's own InceptionV3
  loaded with the same random state dict (images read as pytorch-fid reads them: PIL -> ToTensor).
- frechet-reference.json: Gaussian parameters and pytorch-fid's calculate_frechet_distance on them.
- quality/: real/ and fake/ PNG pairs, a per-length layout recon/<len>/ like `dove reconstruct-batch`,
  and quality-reference.json with scikit-image PSNR and SSIM (gaussian window, sigma 1.5, as Wang et al).
- cifar/: the same synthetic, linearly separable 10-class data set in the CIFAR-100 python layout
  (pickles as distributed: Python 2 protocol 2), in Python 3 protocol 2 pickles, in the CIFAR-100 binary
  layout, and as an image-folder layout; cifar-reference.json; plus malformed files for error tests.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
from typing import Dict, List
from unittest import mock

import numpy as np
import torch

from dove import inception

SEED = 6
CIFAR_CLASSES = 10
CIFAR_TRAIN_PER_CLASS = 60
CIFAR_TEST_PER_CLASS = 20


# ------------------------------------------------------------------------------------------------
# FID Inception with random weights


def random_inception_state(seed: int = SEED) -> Dict[str, torch.Tensor]:
    """A full standard-layout state dict (with the 1008-way fc the real file carries). Convolutions use
    He init and batch norms non-trivial statistics so activations keep an O(1) scale through all 94
    layers: with PyTorch's default init the features would shrink towards zero and a 1e-4 tolerance
    would prove nothing."""
    gen = torch.Generator().manual_seed(seed)
    model = inception.FIDInception()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    state = dict(model.state_dict())
    state["fc.weight"] = torch.randn(1008, 2048, generator=gen) * 0.01
    state["fc.bias"] = torch.zeros(1008)
    return state


def pytorch_fid_network(state: Dict[str, torch.Tensor]) -> torch.nn.Module:
    """pytorch-fid's InceptionV3 (block 3) with `state` in place of the downloaded weights."""
    import pytorch_fid.inception as pfi

    with mock.patch.object(pfi, "load_state_dict_from_url", return_value=state):
        return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()


def pytorch_fid_features(network: torch.nn.Module, paths: List[str]) -> np.ndarray:
    """Activations exactly as pytorch_fid.fid_score.get_activations computes them (batch 1)."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    rows = []
    with torch.no_grad():
        for path in paths:
            image = TF.to_tensor(Image.open(path).convert("RGB")).unsqueeze(0)
            rows.append(network(image)[0].flatten(1).double().numpy()[0])
    return np.stack(rows)


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Random image with structure at several scales (so SSIM and FID see more than noise)."""
    from PIL import Image

    out = np.zeros((h, w, 3), dtype=np.float64)
    for cells, weight in ((2, 0.5), (4, 0.3), (8, 0.2)):
        coarse = rng.random((cells, cells, 3)) * 255
        up = Image.fromarray(coarse.astype(np.uint8)).resize((w, h), Image.BILINEAR)
        out += weight * np.asarray(up, dtype=np.float64)
    return np.clip(out, 0, 255).round().astype(np.uint8)


def save_png(path: str, pixels: np.ndarray) -> None:
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path)


def generate_inception(out: str) -> None:
    rng = np.random.default_rng(SEED)
    weights = os.path.join(out, "pt_inception-2015-12-05-random.pth")
    state = random_inception_state()
    torch.save(state, weights)
    inception.convert(weights, os.path.join(out, "inception-random.pt"))
    os.remove(weights)  # 95 MB nobody needs after the conversion

    # Sizes differ on purpose: the resize to 299 happens inside the network.
    sizes = [(48, 48), (48, 48), (64, 40)]
    paths = []
    for i, (h, w) in enumerate(sizes):
        path = os.path.join(out, "fid-images", f"img{i}.png")
        save_png(path, smooth_image(rng, h, w))
        paths.append(path)
    feats = pytorch_fid_features(pytorch_fid_network(state), paths)
    with open(os.path.join(out, "inception-reference.json"), "w") as f:
        json.dump({"images": [os.path.basename(p) for p in paths], "features": feats.tolist(),
                   "source": "pytorch_fid.inception.InceptionV3 (block 3) with the same random state dict"}, f)


# ------------------------------------------------------------------------------------------------
# Fréchet distance reference


def generate_frechet(out: str) -> None:
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(SEED + 1)
    cases = []
    for d in (3, 16, 64):
        a = rng.standard_normal((d, d))
        b = rng.standard_normal((d, d))
        sigma1 = a @ a.T / d + 0.1 * np.eye(d)
        sigma2 = b @ b.T / d + 0.1 * np.eye(d)
        mu1 = rng.standard_normal(d)
        mu2 = rng.standard_normal(d)
        fid = float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
        cases.append({"dim": d, "mu1": mu1.tolist(), "sigma1": sigma1.tolist(), "mu2": mu2.tolist(),
                      "sigma2": sigma2.tolist(), "fid": fid})
    with open(os.path.join(out, "frechet-reference.json"), "w") as f:
        json.dump({"source": "pytorch_fid.fid_score.calculate_frechet_distance (scipy sqrtm)", "cases": cases}, f)


# ------------------------------------------------------------------------------------------------
# PSNR / SSIM reference (scikit-image)


def generate_quality(out: str) -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(SEED + 2)

    def metrics(real: np.ndarray, fake: np.ndarray) -> Dict[str, float]:
        with np.errstate(divide="ignore"):  # identical pair: PSNR is inf by definition
            psnr = float(peak_signal_noise_ratio(real, fake, data_range=255))
        ssim = float(structural_similarity(real, fake, data_range=255, channel_axis=-1, gaussian_weights=True,
                                           sigma=1.5, use_sample_covariance=False))
        return {"psnr": psnr if np.isfinite(psnr) else "inf", "ssim": ssim}

    pairs = {}
    shapes = {"img0": (64, 64), "img1": (40, 56), "img2": (32, 32), "same": (24, 24)}
    reals = {}
    for name, (h, w) in shapes.items():
        real = smooth_image(rng, h, w)
        reals[name] = real
        sigma = 0.0 if name == "same" else 6.0 + 8.0 * len(pairs)
        fake = np.clip(real + rng.normal(0, sigma, real.shape), 0, 255).round().astype(np.uint8)
        save_png(os.path.join(out, "real", f"{name}.png"), real)
        save_png(os.path.join(out, "fake", f"{name}.png"), fake)
        pairs[name] = metrics(real, fake)

    # reconstruct-batch layout: recon/<len>/<name>.png and recon/auto/; error shrinks with length.
    per_length: Dict[str, Dict[str, Dict[str, float]]] = {}
    for length, sigma in (("8", 40.0), ("16", 20.0), ("32", 8.0), ("auto", 14.0)):
        per_length[length] = {}
        for name in ("img0", "img1", "img2"):
            real = reals[name]
            fake = np.clip(real + rng.normal(0, sigma, real.shape), 0, 255).round().astype(np.uint8)
            save_png(os.path.join(out, "recon", length, f"{name}.png"), fake)
            per_length[length][name] = metrics(real, fake)
    with open(os.path.join(out, "quality-reference.json"), "w") as f:
        json.dump({"source": "skimage.metrics (data_range 255, gaussian_weights, sigma 1.5, "
                             "use_sample_covariance False, channel_axis -1)",
                   "pairs": pairs, "perLength": per_length}, f, indent=1)


# ------------------------------------------------------------------------------------------------
# CIFAR layouts


class Py2Pickler:
    """Writes pickles the way Python 2's cPickle (protocol 2) wrote the distributed CIFAR files: byte
    strings as STRING opcodes (U/T), numpy arrays through numpy.core.multiarray._reconstruct, BINPUT
    memo entries. Python 3 writes bytes differently (via _codecs.encode), so it cannot produce these."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.memo = 0

    def put(self) -> None:
        self.memo += 1
        if self.memo < 256:
            self.buf.write(b"q" + bytes([self.memo]))
        else:
            self.buf.write(b"r" + struct.pack("<I", self.memo))

    def string(self, data: bytes) -> None:
        if len(data) < 256:
            self.buf.write(b"U" + bytes([len(data)]) + data)
        else:
            self.buf.write(b"T" + struct.pack("<i", len(data)) + data)
        self.put()

    def int(self, value: int) -> None:
        if 0 <= value < 256:
            self.buf.write(b"K" + bytes([value]))
        elif 0 <= value < 65536:
            self.buf.write(b"M" + struct.pack("<H", value))
        else:
            self.buf.write(b"J" + struct.pack("<i", value))

    def value(self, obj: object) -> None:
        if isinstance(obj, bytes):
            self.string(obj)
        elif isinstance(obj, bool):
            self.buf.write(b"\x88" if obj else b"\x89")
        elif isinstance(obj, int):
            self.int(obj)
        elif isinstance(obj, list):
            self.buf.write(b"]")
            self.put()
            if obj:
                self.buf.write(b"(")
                for item in obj:
                    self.value(item)
                self.buf.write(b"e")
        elif isinstance(obj, dict):
            self.buf.write(b"}")
            self.put()
            self.buf.write(b"(")
            for key, item in obj.items():
                self.value(key)
                self.value(item)
            self.buf.write(b"u")
        elif isinstance(obj, np.ndarray):
            self.ndarray(obj)
        else:
            raise TypeError(type(obj))

    def ndarray(self, arr: np.ndarray) -> None:
        assert arr.dtype == np.uint8 and arr.flags.c_contiguous
        w = self.buf.write
        w(b"cnumpy.core.multiarray\n_reconstruct\n")
        self.put()
        w(b"cnumpy\nndarray\n")
        self.put()
        w(b"K\x00\x85")  # (0,)
        self.put()
        self.string(b"b")
        w(b"\x87R")  # TUPLE3, REDUCE
        self.put()
        w(b"(K\x01")  # state: (1, shape, dtype, is_fortran, data)
        for dim in arr.shape:
            self.int(dim)
        w({1: b"\x85", 2: b"\x86", 3: b"\x87"}[arr.ndim])
        self.put()
        w(b"cnumpy\ndtype\n")
        self.put()
        self.string(b"u1")
        w(b"K\x00K\x01\x87R")
        self.put()
        w(b"(K\x03")
        self.string(b"|")
        w(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
        w(b"\x89")
        self.string(arr.tobytes())
        w(b"tb")

    def dumps(self, obj: object) -> bytes:
        self.buf.write(b"\x80\x02")
        self.value(obj)
        self.buf.write(b".")
        return self.buf.getvalue()


def separable_data(rng: np.random.Generator, prototypes: np.ndarray, per_class: int):
    """Each class is a random prototype image plus bounded noise: linearly separable in pixel space."""
    labels = np.repeat(np.arange(len(prototypes)), per_class)
    rng.shuffle(labels)
    noise = rng.integers(-40, 41, size=(len(labels), 3072))
    data = np.clip(prototypes[labels].astype(np.int64) + noise, 0, 255).astype(np.uint8)
    return data, labels


def generate_cifar(out: str) -> None:
    rng = np.random.default_rng(SEED + 3)
    prototypes = rng.integers(40, 216, size=(CIFAR_CLASSES, 3072))
    splits = {"train": separable_data(rng, prototypes, CIFAR_TRAIN_PER_CLASS),
              "test": separable_data(rng, prototypes, CIFAR_TEST_PER_CLASS)}
    fine_names = [f"class_{i:02d}".encode() for i in range(100)]
    coarse_names = [f"super_{i:02d}".encode() for i in range(20)]

    def batch(split: str) -> dict:
        data, labels = splits[split]
        return {
            b"filenames": [f"{split}_{i:05d}.png".encode() for i in range(len(labels))],
            b"batch_label": f"{split} batch 1 of 1".encode(),
            b"fine_labels": [int(x) for x in labels],
            b"coarse_labels": [int(x) // 5 for x in labels],
            b"data": data,
        }

    meta = {b"fine_label_names": fine_names, b"coarse_label_names": coarse_names}
    py2 = os.path.join(out, "python", "cifar-100-python")
    os.makedirs(py2, exist_ok=True)
    for split in ("train", "test"):
        with open(os.path.join(py2, split), "wb") as f:
            f.write(Py2Pickler().dumps(batch(split)))
    with open(os.path.join(py2, "meta"), "wb") as f:
        f.write(Py2Pickler().dumps(meta))

    py3 = os.path.join(out, "python3", "cifar-100-python")
    os.makedirs(py3, exist_ok=True)
    for split in ("train", "test"):
        with open(os.path.join(py3, split), "wb") as f:
            pickle.dump(batch(split), f, protocol=2)
    with open(os.path.join(py3, "meta"), "wb") as f:
        pickle.dump(meta, f, protocol=2)

    binary = os.path.join(out, "binary", "cifar-100-binary")
    os.makedirs(binary, exist_ok=True)
    for split in ("train", "test"):
        data, labels = splits[split]
        records = np.concatenate([(labels // 5).astype(np.uint8)[:, None], labels.astype(np.uint8)[:, None], data], 1)
        records.tofile(os.path.join(binary, f"{split}.bin"))
    with open(os.path.join(binary, "fine_label_names.txt"), "w") as f:
        f.write("\n".join(n.decode() for n in fine_names) + "\n")
    with open(os.path.join(binary, "coarse_label_names.txt"), "w") as f:
        f.write("\n".join(n.decode() for n in coarse_names) + "\n")

    # Image folders: a few images per class is enough to test the layout.
    folder = os.path.join(out, "folder")
    for split, count in (("train", 6), ("test", 3)):
        data, labels = splits[split]
        for c in range(3):
            idx = np.nonzero(labels == c)[0][:count]
            for k, i in enumerate(idx):
                hwc = data[i].reshape(3, 32, 32).transpose(1, 2, 0)
                save_png(os.path.join(folder, split, f"class_{c:02d}", f"{k}.png"), hwc)

    # Malformed data sets, one problem each.
    bad = os.path.join(out, "bad")
    good_train = Py2Pickler().dumps(batch("train"))
    cases = {
        "truncated/cifar-100-python/train": good_train[: len(good_train) // 2],
        "notpickle/cifar-100-python/train": b"this is not a pickle file\n" * 4,
        "nolabels/cifar-100-python/train": Py2Pickler().dumps({b"data": splits["train"][0], b"filenames": []}),
        "badbin/cifar-100-binary/train.bin": b"\x00" * 3075,
    }
    for rel, blob in cases.items():
        path = os.path.join(bad, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(blob)
        # Each bad set is otherwise complete, so the reader fails on the named file only.
        other_dir = os.path.dirname(path)
        if rel.startswith("badbin"):
            records = np.zeros((2, 3074), dtype=np.uint8)
            records.tofile(os.path.join(other_dir, "test.bin"))
        else:
            with open(os.path.join(other_dir, "test"), "wb") as f:
                f.write(Py2Pickler().dumps(batch("test")))
            with open(os.path.join(other_dir, "meta"), "wb") as f:
                f.write(Py2Pickler().dumps(meta))

    reference = {}
    for split in ("train", "test"):
        data, labels = splits[split]
        reference[split] = {"count": int(len(labels)), "fineLabels": [int(x) for x in labels[:20]],
                            "firstImageChw": data[0][:16].tolist(), "pixelSum": int(data.astype(np.int64).sum())}
    with open(os.path.join(out, "cifar-reference.json"), "w") as f:
        json.dump({"classes": CIFAR_CLASSES, "fineLabelNames": [n.decode() for n in fine_names], **reference}, f)


def generate(out_dir: str) -> None:
    root = os.path.join(out_dir, "eval")
    os.makedirs(root, exist_ok=True)
    torch.manual_seed(SEED)
    generate_frechet(root)
    generate_quality(os.path.join(root, "quality"))
    generate_cifar(os.path.join(root, "cifar"))
    generate_inception(root)
