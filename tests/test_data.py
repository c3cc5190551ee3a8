"""Datasets in their real on-disk layouts: exact read-back of every class of every protocol, and bad inputs."""
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tauda.checkdata import check_data
from tauda.cli import run
from tauda.data import (DATASETS, Cityscapes, DataError, GTA5, LabelFormatError, Synthia, build_dataset, png_header,
                        read_label_ids, read_synthia_label, write_fixture, write_png16, write_synthia_sample)
from tauda.labels import CITYSCAPES19, CROSSCITY13, IGNORE, PROTOCOLS, SYNTHIA16

LABEL_DIRS = {"gta5": "labels", "synthia": "GT/LABELS", "cityscapes": "gtFine", "crosscity": "Rome/Labels"}
IMAGE_DIRS = {"gta5": "images", "synthia": "RGB", "cityscapes": "leftImg8bit", "crosscity": "Rome/Images"}
SPLITS, OPTIONS = {"crosscity": "test"}, {"crosscity": {"city": "Rome"}}  # the labelled split; the layout's options


def _write(layout, root, **kw):
    "`write_fixture` in the labelled split of `layout` (with its options)."
    return write_fixture(layout, root, split=SPLITS.get(layout, "val"), **OPTIONS.get(layout, {}), **kw)


def _build(layout, root, protocol, **kw):
    "`build_dataset` of the labelled split of `layout` (with its options)."
    return build_dataset(layout, root, SPLITS.get(layout, "val"), protocol, **OPTIONS.get(layout, {}), **kw)


def _first(root, layout, kind):
    folder = root/(LABEL_DIRS if kind == "label" else IMAGE_DIRS)[layout]
    return sorted(folder.rglob("*.png"))[0]


@pytest.mark.parametrize("protocol", list(PROTOCOLS.values()), ids=list(PROTOCOLS))
@pytest.mark.parametrize("layout", list(DATASETS))
def test_every_class_reads_back_pixel_by_pixel(tmp_path, layout, protocol):
    expected = _write(layout, tmp_path, n=3, size=(8, 10), protocol=protocol, seed=7)
    assert set(np.unique(expected)) == set(range(protocol.num_classes)) | {IGNORE}
    ds = _build(layout, tmp_path, protocol, size=None)
    assert len(ds) == 3
    for i in range(3):
        image, label = ds[i]
        assert image.dtype == torch.float32 and image.shape == (3, 8, 10) and 0 <= image.min() and image.max() <= 1
        assert label.dtype == torch.int64 and torch.equal(label, torch.from_numpy(expected[i]))


@pytest.mark.parametrize("layout", list(DATASETS))
def test_resize_is_bilinear_for_images_and_nearest_for_labels(tmp_path, layout):
    protocol = SYNTHIA16 if layout == "synthia" else CITYSCAPES19
    expected = _write(layout, tmp_path, n=1, size=(8, 10), protocol=protocol)
    image, label = _build(layout, tmp_path, protocol, size=(16, 20))[0]
    assert image.shape == (3, 16, 20) and label.shape == (16, 20)
    nearest = torch.from_numpy(expected[0]).repeat_interleave(2, 0).repeat_interleave(2, 1)  # nearest neighbour, 2x
    assert torch.equal(label, nearest)
    full = _build(layout, tmp_path, protocol, size=(16, 20), resize_labels=False)[0][1]
    assert full.shape == (8, 10)


def test_default_sizes_are_the_lineage_sizes():
    assert GTA5.__init__.__defaults__[1] == (720, 1280)
    assert Synthia.__init__.__defaults__[:2] == (SYNTHIA16, (760, 1280))
    assert Cityscapes.__init__.__defaults__[2] == (512, 1024)


def test_target_training_images_need_no_labels(tmp_path):
    write_fixture("cityscapes", tmp_path, n=2, size=(6, 8), split="train")
    shutil.rmtree(tmp_path/"gtFine")
    _, label = Cityscapes(tmp_path, "train", labels=False, size=None)[0]
    assert (label == IGNORE).all()
    report = check_data("cityscapes", tmp_path)
    assert report.ok and any("no gtFine" in n for n in report.notes)


def test_synthia_label_is_16_bit_with_class_in_channel_0(tmp_path):
    ids = np.arange(24, dtype=np.uint16).reshape(4, 6)
    write_synthia_sample(tmp_path, "0000000.png", np.zeros((4, 6, 3), np.uint8), ids, np.full((4, 6), 60000, np.uint16))
    path = tmp_path/"GT/LABELS/0000000.png"
    assert png_header(path) == (6, 4, 16, 2)  # width, height, 16 bits, RGB
    assert (read_synthia_label(path) == ids).all()
    with Image.open(path) as im: assert (np.asarray(im)[..., 0] == 0).all()  # what PIL's 8-bit path would silently give


def test_write_png16_round_trips_any_channel_count(tmp_path):
    from tauda.data import read_png16
    rng = np.random.default_rng(0)
    for c in (1, 3, 4):
        a = rng.integers(0, 65536, (5, 7, c), dtype=np.uint16)
        write_png16(tmp_path/f"{c}.png", a)
        back = read_png16(tmp_path/f"{c}.png")
        assert (back.reshape(5, 7, -1)[..., :c] == a).all()


# ---- bad inputs: each gives a clear error naming the file, or a check-data report naming it ----

@pytest.mark.parametrize("layout", list(DATASETS))
def test_wrong_root_names_the_expected_layout(tmp_path, layout):
    with pytest.raises(DataError, match="expected .*layout"):
        _build(layout, tmp_path/"nowhere", CITYSCAPES19, size=None)
    report = check_data(layout, tmp_path/"nowhere")
    assert not report.ok and "layout" in report.problems["layout"][0]
    assert run(["check-data", layout, str(tmp_path/"nowhere")]) == 1


@pytest.mark.parametrize("layout", list(DATASETS))
def test_missing_label(tmp_path, layout):
    _write(layout, tmp_path, n=2, size=(6, 8))
    label = _first(tmp_path, layout, "label")
    label.unlink()
    with pytest.raises(DataError, match="without"):
        _build(layout, tmp_path, CITYSCAPES19, size=None)
    report = check_data(layout, tmp_path)
    assert list(report.problems) == ["image_without_label"] and len(report.problems["image_without_label"]) == 1


@pytest.mark.parametrize("kind", ["image", "label"])
@pytest.mark.parametrize("layout", list(DATASETS))
def test_truncated_png(tmp_path, layout, kind):
    _write(layout, tmp_path, n=2, size=(24, 32))
    path = _first(tmp_path, layout, kind)
    path.write_bytes(path.read_bytes()[:-40])  # cut inside the compressed data
    ds = _build(layout, tmp_path, CITYSCAPES19, size=None)
    with pytest.raises(DataError, match=str(path)):
        ds[0]
    problems = check_data(layout, tmp_path).problems
    assert list(problems) == ["unreadable"] and problems["unreadable"][0].startswith(str(path))


@pytest.mark.parametrize("layout", ["gta5", "cityscapes", "crosscity"])
def test_rgb_label_where_a_palette_or_grey_one_is_expected(tmp_path, layout):
    _write(layout, tmp_path, n=1, size=(6, 8))
    path = _first(tmp_path, layout, "label")
    Image.open(path).convert("RGB").save(path)  # a colour rendering
    with pytest.raises(LabelFormatError, match=f"{path}.*mode 'RGB'"):
        _build(layout, tmp_path, CITYSCAPES19, size=None)[0]
    problems = check_data(layout, tmp_path).problems
    assert list(problems) == ["wrong_mode"] and problems["wrong_mode"][0].startswith(str(path))


def test_synthia_label_read_as_8_bit(tmp_path):
    write_fixture("synthia", tmp_path, n=1, size=(6, 8))
    path = _first(tmp_path, "synthia", "label")
    with pytest.raises(LabelFormatError, match=f"{path}.*mode 'RGB'"):  # through the 8-bit reader: refused, not zeros
        read_label_ids(path)
    Image.open(path).save(path)  # a copy converted to 8 bits by PIL: the class ids are gone
    with pytest.raises(LabelFormatError, match=f"{path}: 8-bit RGB PNG, expected a 16-bit PNG"):
        Synthia(tmp_path, size=None)[0]
    problems = check_data("synthia", tmp_path).problems
    assert list(problems) == ["wrong_mode"] and "16-bit" in problems["wrong_mode"][0]


@pytest.mark.parametrize("layout", list(DATASETS))
def test_label_value_outside_the_layout_is_ignored_and_reported(tmp_path, layout):
    expected = _write(layout, tmp_path, n=1, size=(6, 8))
    path = _first(tmp_path, layout, "label")
    bad = {"gta5": 40, "cityscapes": 200, "crosscity": 200, "synthia": 300}[layout]
    if layout == "synthia":
        from tauda.data import read_png16
        data = read_png16(path)[..., :3].copy(); data[0, :2, 0] = bad
        write_png16(path, data)
    else:
        with Image.open(path) as im:
            ids = np.array(im); palette = im.getpalette()
        ids[0, :2] = bad
        out = Image.fromarray(ids, mode=im.mode)
        if palette: out.putpalette(palette)
        out.save(path)
    protocol = {"synthia": SYNTHIA16, "crosscity": CROSSCITY13}.get(layout, CITYSCAPES19)  # the fixture's
    _, label = _build(layout, tmp_path, protocol, size=None)[0]
    assert (label[0, :2] == IGNORE).all()  # ignored, never a class
    assert torch.equal(label[1:], torch.from_numpy(expected[0][1:]))
    report = check_data(layout, tmp_path, protocol)
    assert list(report.problems) == ["unknown_label_value"]
    assert report.problems["unknown_label_value"][0].startswith(str(path))
    assert report.unknown_values == {str(bad): 2}


def test_check_data_counts_and_histogram(tmp_path):
    write_fixture("gta5", tmp_path, n=4, size=(10, 12))
    report = check_data("gta5", tmp_path, "synthia16")
    assert report.ok and report.images == report.labels == 4 and report.sizes == {"12x10": 4}
    pixels = report.class_pixels
    assert list(pixels)[:-1] == list(SYNTHIA16.names) and sum(pixels.values()) == 4*10*12 and all(pixels.values())
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True
    assert "OK" in report.format().splitlines()[0]


def test_unpaired_label_and_split_file(tmp_path):
    write_fixture("gta5", tmp_path, n=3, size=(6, 8))
    (tmp_path/"images/00003.png").unlink()
    report = check_data("gta5", tmp_path)
    assert list(report.problems) == ["label_without_image"] and "00003.png" in report.problems["label_without_image"][0]
    (tmp_path/"train.txt").write_text("00001.png\n00002.png\n")
    assert check_data("gta5", tmp_path, split="train").ok


def test_check_data_command_exit_codes(tmp_path, capsys):
    root = tmp_path/"synthia"
    write_fixture("synthia", root, n=1, size=(6, 8))
    out = tmp_path/"report.json"  # beside the dataset: a report inside it is refused
    assert run(["check-data", "synthia", str(root), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["ok"] is True and "OK" in capsys.readouterr().out
    (root/"RGB/0000000.png").unlink()
    assert run(["check-data", "synthia", str(root), "--json", str(out)]) == 1  # its own report: replaced
    assert json.loads(out.read_text())["ok"] is False
    assert run(["check-data", "nosuchlayout", str(root)]) == 2
    assert run(["check-data"]) == 2
    assert run(["check-data", "gta5", str(root), "--protocol", "nosuch"]) == 2


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])  # utf-16: with its byte-order mark
def test_split_files_in_utf8_or_with_a_byte_order_mark(tmp_path, encoding):
    "A split file saved by an editor that adds a byte-order mark (UTF-8 or UTF-16, CRLF lines) lists the same images."
    write_fixture("gta5", tmp_path/"gta5", n=3)
    (tmp_path/"gta5"/"train.txt").write_bytes("00002.png\r\n00003.png\r\n".encode(encoding))
    dataset = build_dataset("gta5", tmp_path/"gta5", "train", CITYSCAPES19, None)
    assert [p.name for p in dataset.images] == ["00002.png", "00003.png"]
