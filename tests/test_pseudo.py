"""Offline pseudo-labels: the written tree reads back as the model's argmax; resuming, interruption, refusals, the command."""
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import tauda.pseudo as pseudo
from tauda.config import apply_overrides, get_preset
from tauda.data import Cityscapes, build_dataset
from tauda.labels import get_protocol
from tauda.minicity import MinicitySpec, ensure_minicity
from tauda.pseudo import MANIFEST, export_pseudo_labels, load_for_inference, output_paths, pseudo_label_main, read_confidence
from tauda.train import CheckpointError, Trainer, upsample

N_TARGET = 6


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    "A 2-iteration source run on a tiny minicity (checkpoints of iterations 1 and 2)."
    tmp = tmp_path_factory.mktemp("pseudo")
    small = ensure_minicity(tmp/"minicity", MinicitySpec(n_source=8, n_source_val=1, n_target_train=N_TARGET, n_target_val=1,
                                                         n_target_tune=1), progress=False)
    cfg = apply_overrides(get_preset("mini-source"), [f"data_root={small}", "schedule.iterations=2", "schedule.checkpoint_every=1",
                                                      "data.batch_size=2", "schedule.eval_batch_size=4"])
    Trainer(cfg, tmp/"run", progress=False).fit()
    return tmp/"run", small, cfg


def outputs(out):
    "Every file (and link) in the tree but the manifest, by path relative to `out`, with its mtime."
    return {p.relative_to(out): p.lstat().st_mtime_ns for p in out.rglob("*") if (p.is_file() or p.is_symlink()) and p.name != MANIFEST}


def test_tree_reads_back_as_the_models_argmax(run):
    rundir, small, cfg = run
    manifest = export_pseudo_labels(rundir/"checkpoints/last.pt", progress=False)
    out = rundir/"pseudo_labels"  # the default: beside the checkpoint's run directory
    assert (out/MANIFEST).is_file() and json.loads((out/MANIFEST).read_text()) == manifest
    assert manifest["complete"] and (manifest["images"], manifest["computed"], manifest["skipped"]) == (N_TARGET, N_TARGET, 0)
    assert manifest["iteration"] == 2 and manifest["split"] == "train" and abs(sum(manifest["class_share"].values()) - 1) < 1e-4
    protocol = get_protocol(cfg.data.protocol)
    model, _, _ = load_for_inference(rundir/"checkpoints/last.pt")
    target = build_dataset("cityscapes", small/"cityscapes", "train", protocol, cfg.data.target_size, labels=False, resize_labels=False)
    tree = Cityscapes(out, "train", protocol=protocol, size=None)
    assert len(tree) == N_TARGET
    pixels = np.zeros(protocol.num_classes)
    with torch.no_grad():
        for (image, placeholder), (tree_image, label), path in zip(target, tree, tree.images):
            assert torch.equal(tree_image, image)  # the linked image, at its own resolution
            probs = upsample(model(image[None])[0], placeholder.shape).softmax(1)[0]  # [C, H, W]
            assert torch.equal(label, probs.argmax(0))
            paths = output_paths(out, "train", path)
            with Image.open(paths["label_ids"]) as im: assert im.mode == "L"
            assert np.abs(read_confidence(paths["confidence"]) - probs.max(0).values.numpy()).max() <= 0.5/255 + 1e-6
            assert np.array_equal(np.array(Image.open(paths["colour"])), protocol.colourise(label))
            pixels += np.bincount(label.ravel().numpy(), minlength=protocol.num_classes)
    share = pixels/pixels.sum()
    assert np.allclose([manifest["class_share"][n] for n in protocol.names], share, atol=1e-6)


def test_resume_rewrites_exactly_the_missing_files(run, tmp_path):
    rundir, _, _ = run
    out = tmp_path/"out"
    first = export_pseudo_labels(rundir/"checkpoints/last.pt", out, progress=False)
    before = outputs(out)
    assert len(before) == 4*N_TARGET
    deleted = [out/"gtFine/train/minicity/minicity_000001_000019_gtFine_labelIds.png",
               out/"gtFine/train/minicity/minicity_000004_000019_gtFine_confidence.png"]
    for p in deleted: p.unlink()
    again = export_pseudo_labels(rundir/"checkpoints/last.pt", out, progress=False)
    after = outputs(out)
    assert set(after) == set(before)
    changed = {p for p in after if after[p] != before[p]}
    assert changed == {p.relative_to(out) for p in deleted}
    assert (again["images"], again["computed"], again["skipped"]) == (N_TARGET, 2, N_TARGET - 2)
    assert again["class_share"] == first["class_share"] and again["complete"]


def test_interrupted_export_leaves_no_partial_file_and_resumes(run, tmp_path, monkeypatch):
    rundir, _, _ = run
    out, k, calls = tmp_path/"out", 3, []
    save_png = pseudo.save_png

    def crashing(array, path):  # the (k+1)-th image dies half-way through writing its label file
        if str(path).endswith("_gtFine_labelIds.png" + f".tmp{os.getpid()}"):
            calls.append(path)
            if len(calls) > k:
                path.write_bytes(b"\x89PNG\r\n\x1a\n half a file")
                raise KeyboardInterrupt
        save_png(array, path)

    monkeypatch.setattr(pseudo, "save_png", crashing)
    with pytest.raises(KeyboardInterrupt): export_pseudo_labels(rundir/"checkpoints/last.pt", out, progress=False)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    labels = sorted(out.rglob("*_gtFine_labelIds.png"))
    assert len(labels) == k
    for p in out.rglob("*.png"):
        with Image.open(p) as im: im.load()  # every file at its final name decodes
    assert json.loads((out/MANIFEST).read_text())["complete"] is False

    monkeypatch.setattr(pseudo, "save_png", save_png)
    (out/"gtFine/train/minicity/.stale.png.tmp1").write_bytes(b"left by a killed export")
    done = export_pseudo_labels(rundir/"checkpoints/last.pt", out, progress=False)
    assert done["complete"] and (done["computed"], done["skipped"]) == (N_TARGET - k, k)
    assert len(outputs(out)) == 4*N_TARGET and not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_another_checkpoint_is_refused_unless_overwrite(run, tmp_path):
    rundir, _, _ = run
    out = tmp_path/"out"
    export_pseudo_labels(rundir/"checkpoints/last.pt", out, progress=False, colour=False)
    with pytest.raises(CheckpointError, match="iteration 2.*iteration 1.*--overwrite"):
        export_pseudo_labels(rundir/"checkpoints/iter_000001.pt", out, progress=False, colour=False)
    copy = shutil.copy(rundir/"checkpoints/last.pt", tmp_path/"copy.pt")  # the same content elsewhere is the same checkpoint
    assert export_pseudo_labels(copy, out, progress=False, colour=False)["computed"] == 0
    redone = export_pseudo_labels(rundir/"checkpoints/iter_000001.pt", out, progress=False, colour=False, overwrite=True)
    assert redone["iteration"] == 1 and redone["computed"] == N_TARGET


def test_command_errors_in_one_line(run, tmp_path, capsys):
    rundir, _, _ = run
    missing = tmp_path/"nothing.pt"
    assert pseudo_label_main([str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tauda pseudo-label: error: ") and str(missing) in err and len(err.strip().splitlines()) == 1
    assert pseudo_label_main([str(rundir/"checkpoints/last.pt"), "--data-root", str(tmp_path/"no-data")]) == 2
    err = capsys.readouterr().err
    assert "no-data" in err and len(err.strip().splitlines()) == 1
    assert pseudo_label_main([str(rundir/"checkpoints/last.pt"), "--out", str(tmp_path/"ok"), "--no-colour", "--batch-size", "2"]) == 0
    assert "6 train images" in capsys.readouterr().out and not list((tmp_path/"ok").rglob("*_color.png"))
