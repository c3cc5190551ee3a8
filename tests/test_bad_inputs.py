"""The catalogue of bad inputs: each row breaks one thing a user can get wrong and runs the command a user runs
(in-process: `tauda.cli.main`), expecting a non-zero exit status and ONE clear line on stderr naming the file or key
and what was expected — never a traceback, never a silent success.

Rows are distinct inputs (one row per mistake, no parametrisation duplicates): `len(CASES)` is the count. Related
cases tested elsewhere and not repeated here: a preset or key with a near-miss spelling, a non-numeric int, a
non-existent data root, a missing checkpoint to evaluate (tests/test_cli.py); stage one or two without `init`, an
unknown target loss, an unknown --import module, a missing or source-only `init` for stage two (tests/test_method.py);
an unknown pipeline or stage prefix, amp=fp16 on CPU (tests/test_training.py); the library-level reading errors of
every layout (tests/test_data.py) and of weight files (tests/test_models.py).
"""
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import error_line, sets
from tauda.cli import main

BASE = ["data.minicity=false", "log.tensorboard=false", "data.num_workers=0", "schedule.iterations=1",
        "schedule.log_every=1", "data.batch_size=2"]


@dataclass
class Env:
    """What a case may use: `data`, its own copy of the shared fixture datasets in the real layouts (free to break); the
    shared source checkpoint (minicity10, tiny net); a temporary folder; a regular file."""
    data: Path
    source: Path
    tmp: Path
    file: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def run(self) -> Path: return self.tmp/"run"

    def first(self, pattern: str) -> Path: return sorted(self.data.glob(pattern))[0]

    def every(self, pattern: str) -> list: return sorted(self.data.glob(pattern))


def train(env: Env, *items, preset: str = "mini-source", args=()) -> list:
    "`tauda train` of a mini preset on the case's fixture data, one iteration, with `--set items`."
    return ["train", preset, "--quiet", "--data-root", str(env.data), "--out", str(env.run), *sets(*BASE, *items),
            *args]


def paper(env: Env, preset: str, *items, args=()) -> list:
    "`tauda train` of a paper-size preset, shrunk to the tiny net and the fixture size."
    small = ["model.name=tiny", "model.weights=", "data.source_size=[32,64]", "data.target_size=[32,64]",
             "data.crop=[32,64]"]
    return train(env, *small, *items, preset=preset, args=args)


def run_dir(env: Env, checkpoint: Path) -> Path:
    "A run directory whose last checkpoint is `checkpoint` (for --resume)."
    (env.run/"checkpoints").mkdir(parents=True)
    shutil.copy(checkpoint, env.run/"checkpoints"/"last.pt")
    return env.run


def truncated(path: Path, keep: int | None = None) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep is not None else data[:-60])
    return path


def relabel(paths, convert):
    for p in paths:
        with Image.open(p) as im: out = convert(im)
        out.save(p)


def synthia_8_bit(env: Env) -> list:
    relabel(env.every("synthia/GT/LABELS/*.png"), lambda im: im.convert("RGB"))  # what an 8-bit converter leaves
    return paper(env, "synthia-bisenet-source")


def gta5_values_outside_the_layout(env: Env) -> list:
    path = env.first("gta5/labels/*.png")
    with Image.open(path) as im: ids, palette = np.array(im), im.getpalette()
    ids[0, :3] = 40  # labelIds end at 33
    out = Image.fromarray(ids, mode="P"); out.putpalette(palette); out.save(path)
    return ["check-data", "gta5", str(env.data/"gta5")]


def weight_file(env: Env) -> Path:
    path = env.tmp/"weights.pth"
    torch.save(torch.load(env.source, weights_only=False)["model"], path)  # a bare state dict: no tauda checkpoint
    return path


def module_with_a_syntax_error(env: Env) -> list:
    (env.tmp/"broken_extension.py").write_text("def register(:\n    pass\n")
    env.monkeypatch.syspath_prepend(str(env.tmp))
    return train(env, args=["--import", "broken_extension"])


def imagenet_offline(env: Env) -> list:
    def offline(url, *args, **kwargs): raise URLError("[Errno -3] Temporary failure in name resolution")
    env.monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    return train(env, "model.name=bisenet", "model.weights=imagenet")


# (id, argv builder, exit status, words the one line must hold; "{data}", "{run}", "{tmp}", "{file}" are filled in)
CASES = [
    # ---- dataset roots and splits
    ("data root is a file", lambda e: train(e)[:3] + ["--data-root", str(e.file)] + train(e)[5:], 2,
     ["data root {file} is not a folder", "{file}/gta5/"]),
    ("no data root for a real dataset",
     lambda e: [a for a in paper(e, "gta5-bisenet-source") if a not in ("--data-root", str(e.data))], 2,
     ["no data root", "--data-root DIR"]),
    ("source folder without images", lambda e: [p.unlink() for p in e.every("gta5/*/*.png")] and train(e), 2,
     ["{data}/gta5/images: no PNG images", "expected GTA5 layout"]),
    ("target split without images", lambda e: [p.unlink() for p in e.every("cityscapes/leftImg8bit/train/*/*.png")] and
     train(e, "method.name=minent"), 2, ["{data}/cityscapes/leftImg8bit/train: no *_leftImg8bit.png images"]),
    ("evaluation split not on disk", lambda e: train(e, "data.eval_split=test"), 2,
     ["{data}/cityscapes/leftImg8bit/test: folder not found", "expected Cityscapes layout"]),
    ("split file naming an image not on disk",
     lambda e: (e.data/"gta5/train.txt").write_text("00001.png\nmissing.png\n") and train(e), 2,
     ["{data}/gta5/train.txt: lists 1 image(s) that are not in {data}/gta5/images", "missing.png"]),
    ("empty split file", lambda e: (e.data/"gta5/train.txt").write_text("\n") and train(e), 2,
     ["{data}/gta5/train.txt: split file lists no images"]),
    # ---- images and labels that do not pair
    ("image without a label", lambda e: e.first("gta5/labels/*.png").unlink() or train(e), 2,
     ["{data}/gta5/labels: 1 image(s) without a label", "00001.png"]),
    ("evaluation image without gtFine labelIds",
     lambda e: e.first("cityscapes/gtFine/val/*/*_labelIds.png").unlink() or train(e), 2,
     ["Cityscapes image(s) without gtFine labelIds", "fixture_000000_000019_gtFine_labelIds.png"]),
    ("label of another size than its image",
     lambda e: relabel(e.every("gta5/labels/*.png"), lambda im: im.resize((16, 8))) or train(e), 2,
     ["label is 16x8, its image", "is 64x32", "{data}/gta5/labels/"]),
    # ---- corrupt and truncated files
    ("truncated image", lambda e: [truncated(p) for p in e.every("gta5/images/*.png")] and train(e), 2,
     ["{data}/gta5/images/", "cannot decode as an RGB image", "truncated"]),
    ("text file named .png",
     lambda e: [p.write_text("not an image") for p in e.every("gta5/images/*.png")] and train(e), 2,
     ["{data}/gta5/images/", "cannot decode as an RGB image", "cannot identify image file"]),
    ("empty label file", lambda e: [p.write_bytes(b"") for p in e.every("gta5/labels/*.png")] and train(e), 2,
     ["{data}/gta5/labels/", "cannot read label image"]),
    # ---- label modes and values
    ("colour rendering as a GTA5 label",
     lambda e: relabel(e.every("gta5/labels/*.png"), lambda im: im.convert("RGB")) or train(e), 2,
     ["{data}/gta5/labels/", "label image has mode 'RGB'", "not a colour rendering"]),
    ("16-bit GTA5 label",
     lambda e: relabel(e.every("gta5/labels/*.png"), lambda im: Image.fromarray(np.array(im).astype(np.uint16))) or
     train(e), 2, ["{data}/gta5/labels/", "mode 'I;16'", "expected one of ('P', 'L')"]),
    ("SYNTHIA label converted to 8 bits", synthia_8_bit, 2,
     ["{data}/synthia/GT/LABELS/", "8-bit RGB PNG, expected a 16-bit PNG"]),
    ("label values outside the layout (check-data)", gta5_values_outside_the_layout, 1,
     ["unknown_label_value", "{data}/gta5/labels/00001.png", "values [40]"]),
    # ---- checkpoints that do not fit the run
    ("init with another class count",
     lambda e: train(e, f"init={e.source}", "data.protocol=cityscapes19", preset="mini-stage1"), 2,
     ["the checkpoint has protocol minicity10 (10 classes), this run has protocol cityscapes19 (19 classes)"]),
    ("init from another model", lambda e: train(e, f"init={e.source}", "model.name=bisenet", preset="mini-stage1"), 2,
     ["the checkpoint has model tiny, this run has model bisenet"]),
    ("truncated init checkpoint",
     lambda e: train(e, f"init={truncated(Path(shutil.copy(e.source, e.tmp/'cut.pt')), 2000)}", preset="mini-stage1"),
     2, ["{tmp}/cut.pt: cannot read the checkpoint", "truncated"]),
    ("weight file given as init", lambda e: train(e, f"init={weight_file(e)}", preset="mini-stage1"), 2,
     ["{tmp}/weights.pth: not a tauda checkpoint", "--set model.weights=FILE"]),
    ("--resume a run of another method",
     lambda e: run_dir(e, e.source) and train(e, f"init={e.source}", preset="mini-stage1", args=["--resume"]), 2,
     ["--resume: {run}/checkpoints/last.pt: the checkpoint has method source, this run has method stage1",
      "another --out"]),
    ("--resume with another class count",
     lambda e: run_dir(e, e.source) and train(e, "data.protocol=cityscapes19", args=["--resume"]), 2,
     ["--resume:", "protocol minicity10 (10 classes)"]),
    ("--resume from a truncated last.pt",
     lambda e: truncated(run_dir(e, e.source)/"checkpoints"/"last.pt", 5000) and train(e, args=["--resume"]), 2,
     ["{run}/checkpoints/last.pt: cannot read the checkpoint"]),
    ("eval of a file that is no checkpoint",
     lambda e: (e.tmp/"notes.pt").write_text("hello") and ["eval", str(e.tmp/"notes.pt")], 2,
     ["{tmp}/notes.pt: cannot read the checkpoint", "not written by torch.save"]),
    ("eval of a weight file", lambda e: ["eval", str(weight_file(e))], 2,
     ["{tmp}/weights.pth: not a tauda checkpoint"]),
    # ---- presets, keys and values
    ("unknown preset, nothing close to it",
     lambda e: ["train", "cyclegan-resnet", "--quiet", "--data-root", str(e.data)], 2,
     ["unknown preset 'cyclegan-resnet'", "(see `tauda presets`)"]),
    ("unknown config key, nothing close to it", lambda e: train(e, "trainer.epochs=5"), 2,
     ["unknown config key 'trainer.epochs'; keys are data.*", "schedule.*", "seed"]),
    ("a key in the wrong group", lambda e: train(e, "model.lr=0.1"), 2,
     ["unknown config key 'model.lr'; did you mean 'optim.lr'?"]),
    ("a group of settings set as one key", lambda e: train(e, "data=3"), 2,
     ["'data' is a group of settings", "data.source"]),
    ("--set without '='", lambda e: train(e, "optim.lr"), 2, ["--set expects key=value", "'optim.lr'"]),
    ("unknown method", lambda e: train(e, "method.name=adain"), 2,
     ["unknown method 'adain'", "choose one of", "stage1"]),
    ("unknown model", lambda e: train(e, "model.name=resnet50"), 2, ["unknown model 'resnet50'", "deeplabv2"]),
    ("unknown class protocol", lambda e: train(e, "data.protocol=kitti"), 2,
     ["data.protocol", "unknown class protocol 'kitti'", "cityscapes19"]),
    ("unknown dataset layout", lambda e: train(e, "data.source=kitti"), 2,
     ["unknown dataset layout 'kitti'", "gta5, synthia, cityscapes"]),
    ("a number where a list is expected", lambda e: train(e, "data.crop=64"), 2,
     ["data.crop: expected tuple", "got 64"]),
    ("a word where a bool is expected", lambda e: train(e, "data.flip=maybe"), 2,
     ["data.flip: expected bool", "'maybe'"]),
    ("a fraction where an int is expected", lambda e: train(e, "seed=1.5"), 2, ["seed: expected int", "got 1.5"]),
    ("unparsable value", lambda e: train(e, "data.scales=[1.0, 1.5"), 2,
     ["data.scales: cannot parse '[1.0, 1.5' as YAML", "at character 10"]),
    ("negative number of iterations", lambda e: train(e, "schedule.iterations=-3"), 2,
     ["schedule.iterations=-3 (expected at least 1)"]),
    ("checkpoint every 0 iterations", lambda e: train(e, "schedule.checkpoint_every=0"), 2,
     ["schedule.checkpoint_every=0 (expected at least 1)"]),
    ("empty batch", lambda e: train(e, "data.batch_size=0"), 2, ["data.batch_size=0 (expected at least 1)"]),
    ("negative learning rate", lambda e: train(e, "optim.lr=-0.01"), 2,
     ["optim.lr=-0.01 (expected a positive number)"]),
    ("negative worker timeout", lambda e: train(e, "data.worker_timeout=-1"), 2,
     ["data.worker_timeout=-1.0 (expected 0 or more)"]),
    ("crop of one number", lambda e: train(e, "data.crop=[64]"), 2, ["data.crop=[64] (expected (height, width)"]),
    ("no scales", lambda e: train(e, "data.scales=[]"), 2, ["data.scales=[] (expected one or more positive factors)"]),
    ("crop larger than the images (height and width swapped)",
     lambda e: train(e, "data.crop=[128,64]", "data.scales=[1.0]"), 2,
     ["data.crop=[128,64] is larger than the source images even at their largest scale (64×128"]),
    ("threshold above 1", lambda e: train(e, f"init={e.source}", "method.tau0=1.5", preset="mini-stage1"), 2,
     ["method.tau0=1.5 (expected in [0, 1))"]),
    # ---- where a run executes
    ("device string torch does not know", lambda e: train(e, "device=gpu0"), 2,
     ["device: cannot use 'gpu0'", "use auto, cpu, cuda or cuda:N"]),
    ("a GPU that is not there", lambda e: train(e, "device=cuda:99"), 2, ["device='cuda:99'", "visible"]),
    ("unknown mixed precision", lambda e: train(e, "amp=fp32"), 2, ["amp: expected one of", "'fp32'"]),
    ("channels_last neither on, off nor auto", lambda e: train(e, "channels_last=yes"), 2,
     ["channels_last: expected auto, on or off", "'yes'"]),
    ("--import of a module with a syntax error", module_with_a_syntax_error, 2,
     ["cannot import 'broken_extension'", "SyntaxError"]),
    ("ImageNet weights on a machine without internet", imagenet_offline, 2,
     ["cannot get torchvision's ImageNet weights for resnet18", "URLError", "--set model.weights=FILE"]),
    ("weight file that does not exist",
     lambda e: train(e, "model.name=bisenet", f"model.weights={e.tmp/'nope.pth'}"), 2,
     ["model 'bisenet'", "{tmp}/nope.pth: weight file not found"]),
    # ---- output folders that cannot be written
    ("train --out under a file", lambda e: train(e)[:5] + ["--out", str(e.file/"run")] + train(e)[7:], 2,
     ["run directory {file}/run: cannot be created, {file} is a file"]),
    ("train --out that is a file", lambda e: train(e)[:5] + ["--out", str(e.file)] + train(e)[7:], 2,
     ["run directory {file}: is a file, not a folder"]),
    ("eval --out under a file", lambda e: ["eval", str(e.source), "--out", str(e.file/"eval")], 2,
     ["output folder {file}/eval: cannot be created, {file} is a file"]),
    ("pseudo-label --out under a file",
     lambda e: ["pseudo-label", str(e.source), "--out", str(e.file/"pl"), "--quiet"], 2,
     ["pseudo-label folder {file}/pl: cannot be created, {file} is a file"]),
    ("pipeline --out under a file",
     lambda e: ["pipeline", "mini", "--quiet", "--data-root", str(e.data), "--out", str(e.file/"p"), *sets(*BASE)], 2,
     ["pipeline folder {file}/p: cannot be created"]),
    ("demo --out under a file", lambda e: ["demo", "--out", str(e.file/"demo"), "--iterations", "1"], 2,
     ["demo folder {file}/demo: cannot be created"]),
    ("check-data --json under a file",
     lambda e: ["check-data", "gta5", str(e.data/"gta5"), "--json", str(e.file/"r.json")], 2,
     ["--json {file}/r.json: {file} is not a folder"]),
    ("pseudo-label of a truncated target image",
     lambda e: truncated(e.first("cityscapes/leftImg8bit/train/*/*.png")) and
     ["pseudo-label", str(e.source), "--data-root", str(e.data), "--out", str(e.tmp/"pl"), "--quiet"], 2,
     ["{data}/cityscapes/leftImg8bit/train/fixture/fixture_000000_000019_leftImg8bit.png: "
      "cannot decode as an RGB image"]),
    ("pseudo-label --batch-size 0",
     lambda e: ["pseudo-label", str(e.source), "--out", str(e.tmp/"pl"), "--batch-size", "0", "--quiet"], 2,
     ["--batch-size: expected at least 1, got 0"]),
    ("pseudo-label --worker-timeout -5",
     lambda e: ["pseudo-label", str(e.source), "--out", str(e.tmp/"pl"), "--worker-timeout", "-5", "--quiet"], 2,
     ["--worker-timeout: expected 0 or more, got -5"]),
]


def test_the_catalogue_holds_at_least_25_distinct_cases():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) >= 25


@pytest.mark.parametrize("build, code, words", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_gives_one_clear_line(layouts, source_run, tmp_path, capsys, monkeypatch, build, code, words):
    env = Env(tmp_path/"data", source_run.checkpoint, tmp_path, tmp_path/"a-file", monkeypatch)
    shutil.copytree(layouts, env.data)
    env.file.write_text("a regular file, where a folder is expected\n")
    argv = build(env)
    with pytest.raises(SystemExit) as exit_: main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == code, f"exit status {exit_.value.code}; stderr: {err[-2000:]}"
    assert "Traceback" not in err + out
    if code == 2: text = error_line(err, argv[0])  # a user error: one line on stderr, the command's name first
    else: text = out  # check-data found problems: its report names them
    for word in words:
        word = word.format(data=env.data, run=env.run, tmp=env.tmp, file=env.file)
        assert word in text, f"{word!r} not in {text!r}"
