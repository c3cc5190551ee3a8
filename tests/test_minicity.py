"""minicity's calibration facts that are cheap to check: determinism, the class set, the long tail, the shift, the real
loaders (on the suite's shared minicity, conftest.py)."""
import json

import numpy as np

from tauda.checkdata import check_data
from tauda.data import GTA5, Cityscapes
from tauda.labels import MINICITY10
from tauda.minicity import (CAMERA, SIMULATOR, SOURCE_LAYOUT, TARGET_LAYOUT, MinicitySpec, camera_look, ensure_minicity,
                            sample_layout, scene, write_minicity)


def test_scenes_are_pure_functions_of_their_key():
    for domain in ("source", "target"):
        a, b = scene(3, domain, "train", 5), scene(3, domain, "train", 5)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        c = scene(3, domain, "val", 5)
        assert not np.array_equal(a[0], c[0])
    rgb, ids = scene(0, "target", "tune", 0)
    assert rgb.shape == (64, 128, 3) and rgb.dtype == np.uint8 and ids.shape == (64, 128) and ids.dtype == np.uint8


def test_written_data_is_deterministic(tmp_path):
    tiny = MinicitySpec(n_source=2, n_source_val=1, n_target_train=2, n_target_val=1, n_target_tune=1)
    a, b = write_minicity(tmp_path/"a", tiny, progress=False), write_minicity(tmp_path/"b", tiny, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 2*(2 + 1) + 2*(2 + 1 + 1)  # images and labels of both domains
    assert all((a/f).read_bytes() == (b/f).read_bytes() for f in files)


def test_class_set_and_long_tail():
    pixels = np.zeros(MINICITY10.num_classes)
    for i in range(60):
        ids = scene(0, "source", "train", i)[1]
        assert set(np.unique(ids)) <= set(MINICITY10.label_ids)  # nothing outside the protocol, nothing ignored
        enc = MINICITY10.encode(ids)
        pixels += np.bincount(enc.ravel(), minlength=MINICITY10.num_classes)
    share = pixels/pixels.sum()
    assert 8 <= MINICITY10.num_classes <= 12 and (share > 0).all()  # every class occurs
    rare = [MINICITY10.names.index(n) for n in ("pole", "traffic sign", "person", "rider")]
    assert share[rare].max() < 0.02 < 0.2 < share.max()  # a long tail: a few large classes, rare small ones


def test_domains_share_layouts_but_not_appearance():
    assert TARGET_LAYOUT != SOURCE_LAYOUT
    assert TARGET_LAYOUT.horizon[0] > SOURCE_LAYOUT.horizon[0]  # a moderate layout shift
    lay = sample_layout(np.random.default_rng(0))
    from tauda.minicity import render
    sim, cam = render(lay, SIMULATOR, np.random.default_rng(1)), render(lay, CAMERA, np.random.default_rng(1))
    assert np.abs(sim.astype(int) - cam.astype(int)).mean() > 10  # the appearance differs clearly
    assert camera_look(1.0) == CAMERA and camera_look(0.0).palette == SIMULATOR.palette
    # no class is repainted: the camera's palette is the simulator's with a few base colours moved a little
    moved = {n: np.linalg.norm(np.subtract(CAMERA.palette[n], SIMULATOR.palette[n])) for n in SIMULATOR.palette}
    assert sum(d > 0 for d in moved.values()) <= 6 and max(moved.values()) < 0.3, moved


def test_layouts_read_by_the_real_loaders(minicity):
    small, spec = minicity.root, minicity.spec
    manifest = json.loads((small/"manifest.json").read_text())
    assert manifest["fingerprint"] == spec.fingerprint()
    src = GTA5(small/"gta5", protocol=MINICITY10, size=None, split_file=small/"gta5"/"train.txt")
    assert len(src) == spec.n_source
    image, label = src[1]
    assert tuple(image.shape) == (3, 64, 128)
    assert np.array_equal(label.numpy(), MINICITY10.encode(scene(0, "source", "train", 1)[1]))
    for split, n in (("train", spec.n_target_train), ("val", spec.n_target_val), ("tune", spec.n_target_tune)):
        tgt = Cityscapes(small/"cityscapes", split, protocol=MINICITY10, size=None)
        assert len(tgt) == n
    assert np.array_equal(tgt[0][1].numpy(), MINICITY10.encode(scene(0, "target", "tune", 0)[1]))
    report = check_data("cityscapes", small/"cityscapes", protocol=MINICITY10, split="val")
    assert report.ok, report.format()


def test_ensure_reuses_and_severity_changes_the_recipe(minicity):
    assert ensure_minicity(minicity.root, minicity.spec) == minicity.root
    assert MinicitySpec(severity=0.5).fingerprint() != MinicitySpec().fingerprint()
    assert np.array_equal(scene(0, "target", "val", 0, severity=0.5)[1], scene(0, "target", "val", 0)[1])  # same layout
