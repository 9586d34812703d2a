"""The FID Inception export (dove.inception) against the pytorch-fid package's own network, and the
evaluation fixtures' pickles against Python's pickle module."""
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from dove import inception
from dove_fixtures import eval as fixtures_eval
from dove_testutil import PYTHON_DIR


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A random standard-layout weights file, converted through the CLI as a user would."""
    tmp = tmp_path_factory.mktemp("inception")
    state = fixtures_eval.random_inception_state(seed=11)
    weights = tmp / "pt_inception-2015-12-05-random.pth"
    torch.save(state, weights)
    out = tmp / "inception.pt"
    proc = subprocess.run([sys.executable, "-m", "dove.inception", "--weights", str(weights), "-o", str(out)],
                          cwd=PYTHON_DIR, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return state, out


def test_export_matches_pytorch_fid_on_random_weights(converted):
    state, path = converted
    exported = torch.jit.load(str(path))
    reference = fixtures_eval.pytorch_fid_network(state)
    gen = torch.Generator().manual_seed(3)
    images = torch.rand(2, 3, 40, 52, generator=gen)  # non-square, not 299: the resize is part of the contract
    with torch.no_grad():
        ours = exported.features(images)
        theirs = reference(images)[0].flatten(1)
    assert ours.shape == (2, 2048)
    # Random weights keep O(1) activations (see random_inception_state), so 1e-4 is a real bound.
    assert theirs.abs().mean() > 0.1
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0), (ours - theirs).abs().max()
    # uint8 NHWC input (pixels from sharp) is the same as float NCHW / 255.
    pixels = (images[:1] * 255).round().to(torch.uint8)
    with torch.no_grad():
        from_uint8 = exported.features(pixels.permute(0, 2, 3, 1).contiguous())
        from_float = exported.features(pixels.float() / 255)
    # (the permuted layout takes other conv kernels: equal to float32 rounding, not bit for bit)
    assert torch.allclose(from_uint8, from_float, atol=1e-4, rtol=1e-5)


def test_export_metadata(converted):
    _, path = converted
    files = {"fid.json": ""}
    torch.jit.load(str(path), _extra_files=files)
    meta = json.loads(files["fid.json"])
    assert meta["format"] == inception.FORMAT and meta["featureDim"] == 2048 and meta["resize"] == 299
    assert len(meta["weightsSha256"]) == 64


def test_converter_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        inception.convert(str(missing), str(tmp_path / "x.pt"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    with pytest.raises(ValueError, match=r"wrong.pth: not the FID Inception weights"):
        inception.convert(str(wrong), str(tmp_path / "x.pt"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth: not a PyTorch state dict"):
        inception.convert(str(garbage), str(tmp_path / "x.pt"))
    proc = subprocess.run([sys.executable, "-m", "dove.inception", "--weights", str(missing), "-o", str(tmp_path / "x.pt")],
                          cwd=PYTHON_DIR, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "nope.pth" in proc.stderr and "pytorch-fid" in proc.stderr


def test_py2_style_cifar_pickle_reads_back(tmp_path):
    """The fixture writer produces what Python 2's cPickle wrote: Python 3 reads it back exactly."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(7, 3072), dtype=np.uint8)
    obj = {b"data": data, b"fine_labels": [1, 300, 70000], b"batch_label": b"x" * 300, b"filenames": [b"a.png"]}
    blob = fixtures_eval.Py2Pickler().dumps(obj)
    assert blob[:2] == b"\x80\x02" and b"_codecs" not in blob  # STRING opcodes, not Python 3's bytes encoding
    back = pickle.loads(blob, encoding="bytes")
    assert back[b"fine_labels"] == [1, 300, 70000]
    assert back[b"batch_label"] == b"x" * 300 and back[b"filenames"] == [b"a.png"]
    assert back[b"data"].dtype == np.uint8 and (back[b"data"] == data).all()
