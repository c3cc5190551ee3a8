"""Cityscapes → NTHU CrossCity: the dataset in the release's layout read back class by class, its `city` option
through the registry and the config, `tauda check-data crosscity`, its presets in `tauda presets`, and the
source → stage one → stage two chain on fixture data from the command line."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import sets
from tauda.cli import run
from tauda.config import apply_overrides, get_preset
from tauda.crosscity import CITIES, CrossCity
from tauda.data import DataError, build_dataset, write_fixture
from tauda.labels import CROSSCITY13, IGNORE
from tauda.loading import target_dataset

AUTHORS13 = {7: 0, 8: 1, 11: 2, 19: 3, 20: 4, 21: 5, 23: 6, 24: 7, 25: 8, 26: 9, 28: 10, 32: 11, 33: 12}


@pytest.fixture(scope="module")
def nthu(tmp_path_factory):
    "Every city: 2 labelled test images (every label id 0..33 in each) and 2 unlabelled training images, 24×32."
    root = tmp_path_factory.mktemp("nthu")
    expected = {city: write_fixture("crosscity", root, n=2, size=(24, 32), split="test", city=city, seed=k)
                for k, city in enumerate(CITIES)}
    for city in CITIES: write_fixture("crosscity", root, n=2, size=(24, 32), split="train", city=city)
    return root, expected


def test_fixtures_read_back_class_by_class(nthu):
    root, expected = nthu
    for city in CITIES:
        test = build_dataset("crosscity", root, "test", CROSSCITY13, size=None, city=city)
        assert len(test) == 2 and all(p.parent.parts[-3:] == (city, "Images", "Test") for p in test.images)
        for i in range(2):
            label = test[i][1].numpy()
            assert (label == expected[city][i]).all()
            raw = np.array(Image.open(root/city/"Labels"/"Test"/f"{test.images[i].stem}_eval.png"))
            for label_id in range(34):  # each Cityscapes label id lands on the authors' train id, or is ignored
                assert (label[raw == label_id] == AUTHORS13.get(label_id, IGNORE)).all(), (city, label_id)
            assert set(np.unique(label)) == set(range(13)) | {IGNORE}
        train = build_dataset("crosscity", root, "train", CROSSCITY13, size=None, labels=False, city=city)
        assert len(train) == 2 and all((train[i][1] == IGNORE).all() for i in range(2))


def test_city_option_through_the_registry_and_the_config(nthu, layouts):
    root, _ = nthu
    with pytest.raises(DataError, match="needs a city"): build_dataset("crosscity", root, "test", CROSSCITY13, None)
    with pytest.raises(DataError, match="train .unlabelled. and test"):
        build_dataset("crosscity", root, "val", CROSSCITY13, None, city="Rome")
    gta5 = build_dataset("gta5", layouts/"gta5", "val", CROSSCITY13, None, city="Rome")  # a layout without the option
    assert len(gta5) == 4
    cfg = apply_overrides(get_preset("crosscity-tokyo-bisenet-stage1"), [f"data.target_root={root}"])
    dataset = target_dataset(cfg)
    assert isinstance(dataset, CrossCity) and dataset.images[0].parts[-4] == "Tokyo"
    assert dataset[0][0].shape == (3, 24, 32)


def test_check_data_crosscity(nthu, tmp_path, capsys):
    root, _ = nthu
    assert run(["check-data", "crosscity", str(root), "--json", str(tmp_path/"report.json")]) == 0
    report = json.loads((tmp_path/"report.json").read_text())
    assert report["ok"] and (report["images"], report["labels"], report["protocol"]) == (16, 8, "crosscity13")
    assert set(report["class_pixels"]) == set(CROSSCITY13.names) | {"ignore"}
    capsys.readouterr()
    assert run(["check-data", "crosscity", str(root), "--split", "val"]) == 1  # a problem found, named
    assert "layout (1)" in capsys.readouterr().out


def test_presets_lists_every_crosscity_preset(capsys):
    assert run(["presets"]) == 0
    printed = capsys.readouterr().out
    for city in CITIES:
        for stage in ("source", "stage1", "stage2"):
            assert f"crosscity-{city.lower()}-bisenet-{stage} " in printed
    assert "Cityscapes → NTHU Rome, bisenet: stage one as the authors' released runs" in printed


def test_pipeline_on_crosscity_fixtures(nthu, layouts, tmp_path, capsys):
    "Source on Cityscapes train (fixture), stage one and two on the Rome fixture, evaluated on its test images."
    root, _ = nthu
    data = tmp_path/"data"
    data.mkdir()
    (data/"cityscapes").symlink_to(layouts/"cityscapes")
    (data/"crosscity").symlink_to(root)
    items = ["schedule.iterations=2", "schedule.log_every=1", "data.num_workers=0", "data.scales=[1.0]",
             "model.weights=", "data.crop=[64,64]", "log.tensorboard=false", "data.source_size=[64,128]",
             "data.target_size=[64,96]"]  # BiSeNet's BatchNorm trains on the source: 2×2 features at 1/32
    out = tmp_path/"run"
    argv = ["pipeline", "crosscity-rome-bisenet", "--data-root", str(data), "--out", str(out), "--quiet", *sets(*items)]
    assert run(argv) == 0, capsys.readouterr().err
    assert "mIoU" in capsys.readouterr().out
    for stage in ("source", "stage1", "stage2"):
        report = json.loads((out/stage/"eval.json").read_text())
        assert report["target"]["protocol"] == "crosscity13" and report["iteration"] == 2
    ckpt = torch.load(out/"stage1"/"checkpoints"/"last.pt", weights_only=False)
    assert ckpt["config"]["data"]["city"] == "Rome" and ckpt["config"]["method"]["thresholds"]["head_masks"] == "own"
    assert run(["eval", str(out/"stage2"/"checkpoints"/"last.pt"), "--out", str(tmp_path/"eval")]) == 0
