"""Evaluation: tauda's 19-class scores equal the official cityscapesscripts evaluation on the same label PNGs."""
import copy

import numpy as np
import pytest
import torch
from PIL import Image

from tauda.data import DataError, write_fixture
from tauda.labels import CITYSCAPES19, SYNTHIA13, SYNTHIA16
from tauda.metrics import (ConfusionMatrix, evaluate_label_pngs, format_table, match_predictions, miou_report,
                           save_prediction)

cs_eval = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")


def official(predictions, ground_truths) -> dict:
    args = copy.copy(cs_eval.args)
    args.evalInstLevelScore, args.evalPixelAccuracy, args.JSONOutput, args.quiet = False, False, False, True
    return cs_eval.evaluateImgLists([str(p) for p in predictions], [str(p) for p in ground_truths], args)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    "3 Cityscapes-layout ground truths of 64x128 holding every labelId, and random predictions covering every labelId."
    root = tmp_path_factory.mktemp("cs")
    write_fixture("cityscapes", root/"cityscapes", n=3, size=(64, 128), seed=3)
    gts = sorted((root/"cityscapes/gtFine/val").rglob("*_gtFine_labelIds.png"))
    rng = np.random.default_rng(5)
    for i, gt in enumerate(gts):
        ids = np.array(Image.open(gt))
        keep = rng.random(ids.shape) < [0.3, 0.6, 0.9][i]
        pred = np.where(keep, ids, rng.integers(0, 34, ids.shape)).astype(np.uint8)
        pred.flat[:34] = np.arange(34)  # every labelId predicted somewhere
        out = root/"pred"/gt.parent.name/gt.name.replace("_gtFine_labelIds", "_leftImg8bit_pred")
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pred, mode="L").save(out)
    return root, gts, match_predictions(root/"pred", gts)


def test_nineteen_class_scores_equal_cityscapesscripts(tree):
    _, gts, preds = tree
    ours, theirs = evaluate_label_pngs(preds, gts, CITYSCAPES19), official(preds, gts)
    iou = ours.iou()
    assert not np.isnan(iou).any() and 0.05 < ours.miou() < 0.95
    for name, value in zip(CITYSCAPES19.names, iou):
        assert abs(value - theirs["classScores"][name]) < 1e-6, name
    assert abs(ours.miou() - theirs["averageScoreClasses"]) < 1e-6
    # and the table the trainer prints holds the same numbers, rounded to 0.01 %
    report = miou_report(ours, CITYSCAPES19)
    assert abs(report["miou"] - round(100*theirs["averageScoreClasses"], 2)) < 1e-9


def test_predictions_of_train_ids_round_trip_through_label_pngs(tree, tmp_path):
    _, gts, _ = tree
    rng = np.random.default_rng(0)
    preds, cm = [], ConfusionMatrix(19)
    for gt in gts:
        target = torch.from_numpy(CITYSCAPES19.encode(np.array(Image.open(gt))))
        right = torch.from_numpy(rng.random(target.shape) < 0.5)
        pred = torch.where(right, target.clamp(max=18), torch.randint(0, 19, target.shape))
        cm.update(pred, target)
        preds.append(tmp_path/gt.name.replace("gtFine_labelIds", "pred"))
        save_prediction(preds[-1], pred)
    from_files = evaluate_label_pngs(preds, gts)
    assert torch.equal(from_files.matrix, cm.matrix) and from_files.missed.sum() == 0
    theirs = official(preds, gts)
    assert abs(from_files.miou() - theirs["averageScoreClasses"]) < 1e-6


def test_no_class_predictions_are_false_negatives_only():
    target = torch.tensor([0, 0, 1, 1])
    cm = ConfusionMatrix(2).update(torch.tensor([0, 255, 1, 0]), target)
    assert cm.missed.tolist() == [1, 0]
    np.testing.assert_allclose(cm.iou(), [1/3, 1/2])  # class 0: tp 1, fn 1 (the missed pixel), fp 1; 1: tp 1, fn 1
    assert cm.pixel_accuracy() == 0.5


def test_synthia_reports_miou16_and_miou13():
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.integers(0, 16, (2, 32, 32)))
    right = torch.from_numpy(rng.random((2, 32, 32)) < 0.5)
    pred = torch.where(right, target, torch.from_numpy(rng.integers(0, 16, (2, 32, 32))))
    cm = ConfusionMatrix(16).update(pred, target)
    report = miou_report(cm, SYNTHIA16)
    assert report["miou"] == round(100*np.mean(cm.iou()), 2)
    assert report["miou13"] == round(100*np.mean(cm.iou()[SYNTHIA16.indices_of(SYNTHIA13)]), 2)
    rows = [line.split()[0] for line in format_table({"m": report}, SYNTHIA16).splitlines()]
    assert rows[-2:] == ["mIoU", "mIoU13"]
    # a 19-way model scored on the SYNTHIA subsets
    cm19 = ConfusionMatrix(19).update(pred, target)
    r19 = miou_report(cm19, CITYSCAPES19, subsets=(SYNTHIA16, SYNTHIA13))
    assert r19["miou16"] == round(100*np.nanmean(cm19.iou()[CITYSCAPES19.indices_of(SYNTHIA16)]), 2)
    assert [line.split()[0] for line in format_table({"m": r19}, CITYSCAPES19).splitlines()[-3:]] == \
        ["mIoU", "mIoU16", "mIoU13"]


def test_tables_say_where_they_were_measured_and_name_every_class_in_full():
    cm = ConfusionMatrix(19).update(torch.arange(19).repeat(2), torch.arange(19).repeat(2))
    report = miou_report(cm, CITYSCAPES19)
    target = {**report, "domain": "target", "dataset": "cityscapes", "split": "val"}
    source = {**report, "domain": "source", "dataset": "gta5", "split": "val"}
    table = format_table([("a", target), ("b", target), ("a", source), ("b", source)], CITYSCAPES19).splitlines()
    assert "target domain (cityscapes), split val" in table[1] and "source domain (gta5), split val" in table[1]
    assert table[2].split() == ["class", "a", "b", "a", "b"]
    assert table[2].index(" b") < table[1].index("source domain") < table[2].rindex(" a")  # over the second group
    labels = [line[:16].strip() for line in table[4:]]
    assert all(name in labels for name in CITYSCAPES19.names)  # "traffic light", "vegetation": never cut
    one = format_table({"target": target, "source": source}, CITYSCAPES19, title="run a").splitlines()
    assert "of run a" in one[0] and one[1] == "  target domain (cityscapes), split val"
    assert one[2] == "  source domain (gta5), split val"
    plain = format_table({"m": report}, CITYSCAPES19).splitlines()
    assert plain[1].split() == ["class", "m"]  # a report that does not say where: no heading


def test_bad_prediction_files_are_named(tree, tmp_path):
    _, gts, preds = tree
    small = tmp_path/"small_pred.png"
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(small)
    with pytest.raises(DataError, match="small_pred.png"):
        evaluate_label_pngs([small], gts[:1])
    with pytest.raises(DataError, match="0 prediction files"):
        match_predictions(tmp_path/"empty", gts)
    with pytest.raises(ValueError, match="2 prediction files for 3"):
        evaluate_label_pngs(preds[:2], gts)
