"""Offline pseudo-labels: the written tree reads back as the model's argmax; resuming, interruption, refusals, the
command. The model is the shared source run (conftest.py), its checkpoints copied into each test's own folder."""
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import tauda.pseudo as pseudo
from tauda.checkpoint import CheckpointError, load_for_inference
from tauda.cli import run
from tauda.data import Cityscapes, build_dataset
from tauda.labels import get_protocol
from tauda.models import upsample
from tauda.outputs import LOCK, MARKER, OutputError
from tauda.pseudo import MANIFEST, export_pseudo_labels, output_paths, read_confidence


@pytest.fixture
def copied_run(minicity, source_run, tmp_path):
    """A run directory holding the shared source run's checkpoints of iteration 1 and the last (an export without `out`
    writes beside them), the source run, and the number of target training images (what is pseudo-labelled)."""
    folder = tmp_path/"run"
    (folder/"checkpoints").mkdir(parents=True)
    for name in ("last.pt", "iter_000001.pt"): shutil.copy(source_run.checkpoint.parent/name, folder/"checkpoints"/name)
    return folder, source_run, minicity.spec.n_target_train


def outputs(out):
    "Every file (and link) in the tree but the manifest, by path relative to `out`, with its mtime."
    return {p.relative_to(out): p.lstat().st_mtime_ns for p in out.rglob("*")
            if (p.is_file() or p.is_symlink()) and p.name not in (MANIFEST, MARKER, LOCK)}


def test_tree_reads_back_as_the_models_argmax(copied_run):
    rundir, source, n_target = copied_run
    cfg = source.config
    manifest = export_pseudo_labels(rundir/"checkpoints/last.pt", progress=False)
    out = rundir/"pseudo_labels"  # the default: beside the checkpoint's run directory
    assert (out/MANIFEST).is_file() and json.loads((out/MANIFEST).read_text()) == manifest
    assert manifest["complete"] and (manifest["images"], manifest["computed"], manifest["skipped"]) == \
        (n_target, n_target, 0)
    assert manifest["iteration"] == source.iterations and manifest["split"] == "train"
    assert abs(sum(manifest["class_share"].values()) - 1) < 1e-4
    protocol = get_protocol(cfg.data.protocol)
    model, _, _ = load_for_inference(rundir/"checkpoints/last.pt")
    target = build_dataset("cityscapes", source.data/"cityscapes", "train", protocol, cfg.data.target_size,
                           labels=False, resize_labels=False)
    tree = Cityscapes(out, "train", protocol=protocol, size=None)
    assert len(tree) == n_target
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


def test_resume_rewrites_exactly_the_missing_files(copied_run, tmp_path):
    rundir, _, n_target = copied_run
    out = tmp_path/"out"
    first = export_pseudo_labels(rundir/"checkpoints/last.pt", out, progress=False)
    before = outputs(out)
    assert len(before) == 4*n_target
    deleted = [out/"gtFine/train/minicity/minicity_000001_000019_gtFine_labelIds.png",
               out/"gtFine/train/minicity/minicity_000004_000019_gtFine_confidence.png"]
    for p in deleted: p.unlink()
    again = export_pseudo_labels(rundir/"checkpoints/last.pt", out, progress=False)
    after = outputs(out)
    assert set(after) == set(before)
    changed = {p for p in after if after[p] != before[p]}
    assert changed == {p.relative_to(out) for p in deleted}
    assert (again["images"], again["computed"], again["skipped"]) == (n_target, 2, n_target - 2)
    assert again["class_share"] == first["class_share"] and again["complete"]


def test_interrupted_export_leaves_no_partial_file_and_resumes(copied_run, tmp_path, monkeypatch):
    rundir, _, n_target = copied_run
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
    stale = out/"gtFine/train/minicity/.minicity_000005_000019_gtFine_color.png.tmp1"  # what kill -9 leaves
    stale.write_bytes(b"left by a killed export")
    notes = [out/"notes"/".todo.tmp.txt", out/"gtFine/train/minicity/.notes.png.tmp1"]  # the user's, named alike
    for note in notes:
        note.parent.mkdir(exist_ok=True)
        note.write_text("the user's")
    done = export_pseudo_labels(rundir/"checkpoints/last.pt", out, progress=False)
    assert done["complete"] and (done["computed"], done["skipped"]) == (n_target - k, k)
    assert not stale.exists() and all(note.read_text() == "the user's" for note in notes)
    assert len(outputs(out)) == 4*n_target + len(notes)


def test_another_checkpoint_is_refused_unless_overwrite(copied_run, tmp_path):
    rundir, source, n_target = copied_run
    out = tmp_path/"out"
    export_pseudo_labels(rundir/"checkpoints/last.pt", out, progress=False, colour=False)
    with pytest.raises(CheckpointError, match=f"iteration {source.iterations}.*iteration 1.*--overwrite"):
        export_pseudo_labels(rundir/"checkpoints/iter_000001.pt", out, progress=False, colour=False)
    copy = shutil.copy(rundir/"checkpoints/last.pt", tmp_path/"copy.pt")  # the same content elsewhere is the same one
    assert export_pseudo_labels(copy, out, progress=False, colour=False)["computed"] == 0
    redone = export_pseudo_labels(rundir/"checkpoints/iter_000001.pt", out, progress=False, colour=False,
                                  overwrite=True)
    assert redone["iteration"] == 1 and redone["computed"] == n_target


def test_overwrite_replaces_only_the_exports_own_files(copied_run, tmp_path):
    "--overwrite by another checkpoint: the old export's files go (none mixed in), a user's file in the tree stays."
    rundir, _, n_target = copied_run
    out = tmp_path/"out"
    export_pseudo_labels(rundir/"checkpoints/last.pt", out, progress=False)  # with colour renderings
    (out/"gtFine"/"README.txt").write_text("the user's")
    redone = export_pseudo_labels(rundir/"checkpoints/iter_000001.pt", out, progress=False, colour=False,
                                  overwrite=True)
    assert redone["computed"] == n_target and not list(out.rglob("*_color.png"))
    assert (out/"gtFine"/"README.txt").read_text() == "the user's" and len(outputs(out)) == 3*n_target + 1


def test_command_errors_in_one_line(copied_run, tmp_path, capsys):
    rundir, _, n_target = copied_run
    missing = tmp_path/"nothing.pt"
    assert run(["pseudo-label", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tauda pseudo-label: error: ") and str(missing) in err and len(err.strip().splitlines()) == 1
    assert run(["pseudo-label", str(rundir/"checkpoints/last.pt"), "--data-root", str(tmp_path/"no-data")]) == 2
    err = capsys.readouterr().err
    assert "no-data" in err and len(err.strip().splitlines()) == 1
    last = str(rundir/"checkpoints/last.pt")
    assert run(["pseudo-label", last, "--out", str(tmp_path/"ok"), "--no-colour", "--batch-size", "2"]) == 0
    assert f"{n_target} train images" in capsys.readouterr().out and not list((tmp_path/"ok").rglob("*_color.png"))


def test_target_images_of_mixed_resolutions_evaluate_and_pseudo_label(copied_run, tmp_path):
    """A target folder holding several cameras' resolutions: evaluation in batches equals one image at a time, and
    every pseudo-label has its own image's size."""
    from tauda.config import apply_overrides, get_preset
    from tauda.data import write_cityscapes_sample
    from tauda.loading import target_dataset
    from tauda.metrics import evaluate
    rundir, source, _ = copied_run
    rng, data = np.random.default_rng(0), tmp_path/"data"
    sizes = [(64, 128), (48, 96), (48, 96), (64, 128), (40, 80)]  # (h, w), in file order
    for split in ("train", "val"):
        for i, (h, w) in enumerate(sizes):
            rgb, ids = rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 34, (h, w)).astype(np.uint8)
            write_cityscapes_sample(data/"cityscapes", split, "mixed", f"mixed_{i:06d}_000019", rgb, ids)
    (data/"gta5").symlink_to(source.data/"gta5")
    cfg = apply_overrides(get_preset("mini-source"), [f"data_root={data}", "schedule.eval_batch_size=4"])
    model, _, _ = load_for_inference(rundir/"checkpoints/last.pt")
    val = target_dataset(cfg)
    batched = evaluate(model, val, 10, "cpu", batch_size=4)
    alone = [evaluate(model, torch.utils.data.Subset(val, [i]), 10, "cpu").matrix for i in range(len(val))]
    assert torch.equal(batched.matrix, sum(alone)) and batched.matrix.sum() > 0
    manifest = export_pseudo_labels(rundir/"checkpoints/last.pt", tmp_path/"pl", data_root=data, batch_size=4,
                                    progress=False)
    assert manifest["complete"] and manifest["computed"] == len(sizes)
    labels = sorted((tmp_path/"pl"/"gtFine"/"train"/"mixed").glob("*_labelIds.png"))
    assert [Image.open(p).size[::-1] for p in labels] == sizes
