"""The catalogue of bad inputs: each row breaks one thing a user can get wrong and runs the command a user runs
(in-process: `tauda.cli.main`), expecting a non-zero exit status and ONE clear line on stderr naming the file or key
and what was expected — never a traceback, never a silent success — and that nothing was lost: every file that was
there before the command (the case's copy of the datasets, an earlier run, a user's own files) is there after it,
byte for byte (the lock file of a run, which holds the pid of its last writer, aside).

Rows are distinct inputs (one row per mistake, no parametrisation duplicates): `len(CASES)` is the count. Related
cases tested elsewhere and not repeated here: a preset or key with a near-miss spelling, a non-numeric int, a
non-existent data root, a missing checkpoint to evaluate (tests/test_cli.py); stage one or two without `init`, an
unknown target loss, an unknown --import module, a missing or source-only `init` for stage two (tests/test_method.py);
an unknown pipeline or stage prefix, amp=fp16 on CPU, a finished pipeline stage run again with other settings
(tests/test_training.py); the library-level reading errors of every layout (tests/test_data.py) and of weight files
(tests/test_models.py); a second writer, Ctrl-C and SIGTERM (tests/test_faults.py).
"""
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

import tauda
from helpers import error_line, sets
from tauda.cli import main
from tauda.outputs import MARKER, claim, new_marker

BASE = ["data.minicity=false", "log.tensorboard=false", "data.num_workers=0", "schedule.iterations=1",
        "schedule.log_every=1", "data.batch_size=2"]


@dataclass
class Env:
    """What a case may use: `data`, its own copy of the shared fixture datasets in the real layouts (free to break); the
    shared source checkpoint (minicity10, tiny net); `earlier`, a finished 2-iteration run of `train(env)` to copy; a
    temporary folder; a regular file; `held`, where a case keeps what must stay alive while the command runs."""
    data: Path
    source: Path
    tmp: Path
    file: Path
    monkeypatch: pytest.MonkeyPatch
    earlier: Path = None
    held: list = field(default_factory=list)

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
    "A run directory (its marker says tauda wrote it) whose last checkpoint is `checkpoint` (for --resume)."
    (env.run/"checkpoints").mkdir(parents=True)
    shutil.copy(checkpoint, env.run/"checkpoints"/"last.pt")
    return marked(env.run, "train", files=["checkpoints/last.pt"])


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


EARLIER = ["schedule.iterations=2"]  # the finished run `env.earlier`: train(env, *EARLIER)


def with_out(argv: list, out) -> list:
    "`argv` with its `--out` replaced by `out`."
    argv = list(argv)
    argv[argv.index("--out") + 1] = str(out)
    return argv


def earlier_run(env: Env, *items, args=()) -> list:
    "`tauda train` again into a copy of the earlier finished run (`env.run`), with `--set items`."
    shutil.copytree(env.earlier, env.run)
    return train(env, *EARLIER, *items, args=args)


def users_folder(env: Env, name: str = "notes") -> Path:
    "A folder of the user's, with a file in it (and one named like a temporary)."
    folder = env.tmp/name
    folder.mkdir()
    (folder/"todo.txt").write_text("the user's notes\n")
    (folder/".todo.tmp.txt").write_text("the user's, named like a temporary\n")
    return folder


def marked(folder: Path, command: str, **marker) -> Path:
    "A folder whose marker says that `tauda COMMAND` wrote it."
    folder.mkdir(parents=True, exist_ok=True)
    (folder/MARKER).write_text(json.dumps({**new_marker(command), **marker}))
    return folder


def dangling(link: Path) -> Path:
    link.symlink_to(link.parent/"moved-away")
    return link


def held_run(env: Env) -> list:
    "The earlier run, locked by another writer (this process, through a second claim) while the command runs."
    argv = earlier_run(env, args=["--resume"])
    env.held.append(claim(env.run, "train", "run directory").lock("run directory"))
    return argv


def stripped_last(env: Env) -> list:
    "The earlier run whose last checkpoint keeps only what evaluation needs (no optimiser, method state, RNG)."
    argv = earlier_run(env, args=["--resume"])
    ckpt = torch.load(env.run/"checkpoints"/"last.pt", weights_only=False)
    torch.save({k: ckpt[k] for k in ("model", "config", "iteration", "model_name", "protocol")},
               env.run/"checkpoints"/"last.pt")
    return argv


def partial_run(env: Env) -> list:
    "The earlier run as a run killed before its first checkpoint leaves it: its marker, config and log."
    argv = earlier_run(env)
    shutil.rmtree(env.run/"checkpoints")
    (env.run/"eval.json").unlink()
    return argv


def damaged_log(env: Env) -> list:
    "The earlier run with a line of the user's at the top of its log."
    argv = earlier_run(env, args=["--resume"])
    log = env.run/"log.jsonl"
    log.write_text("# my notes\n" + log.read_text())
    return argv


def foreign_checkpoint(env: Env, **entries) -> Path:
    "A pickle of another program, with a 'model' entry."
    path = env.tmp/"other.pt"
    torch.save({"model": {"w": torch.zeros(2)}, **entries}, path)
    return path


def raising_module(env: Env) -> list:
    (env.tmp/"raising_extension.py").write_text("raise RuntimeError('no GPU licence found')\n")
    env.monkeypatch.syspath_prepend(str(env.tmp))
    return train(env, args=["--import", "raising_extension"])


def unusable_cache(env: Env) -> list:
    env.monkeypatch.setenv("TAUDA_CACHE", str(env.file))
    return ["train", "mini-source", "--quiet", "--out", str(env.run), *sets("schedule.iterations=1")]


def pseudo(env: Env, out, *args) -> list:
    return ["pseudo-label", str(env.source), "--data-root", str(env.data), "--out", str(out), "--quiet", *args]


def study(env: Env, *args) -> list:
    return ["study", "--runs", "source", "--seeds", "0", "--data-root", str(env.data), "--quiet",
            "--out", str(env.tmp/"study"), "--results", str(env.tmp/"results"), *args]


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
     ["optim.lr=-0.01 (expected a positive number below 1e6)"]),
    ("negative worker timeout", lambda e: train(e, "data.worker_timeout=-1"), 2,
     ["data.worker_timeout=-1.0 (expected 0 or more)"]),
    ("crop of one number", lambda e: train(e, "data.crop=[64]"), 2, ["data.crop=[64] (expected (height, width)"]),
    ("no scales", lambda e: train(e, "data.scales=[]"), 2, ["data.scales=[] (expected one or more positive factors)"]),
    ("crop larger than the images (height and width swapped)",
     lambda e: train(e, "data.crop=[128,64]", "data.scales=[1.0]"), 2,
     ["data.crop=[128,64] is larger than the source images even at their largest scale (64×128"]),
    ("threshold above 1", lambda e: train(e, f"init={e.source}", "method.thresholds.tau0=1.5", preset="mini-stage1"), 2,
     ["method.thresholds.tau0=1.5 (expected in [0, 1))"]),
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
    # ---- outputs that tauda owns, and only those
    ("train --out the data root", lambda e: with_out(train(e), e.data), 2,
     ["run directory {data} is the dataset {data}: tauda never writes into a dataset", "choose another --out"]),
    ("train --out inside a dataset", lambda e: with_out(train(e), e.data/"cityscapes"/"runs"), 2,
     ["run directory {data}/cityscapes/runs lies inside the dataset {data}"]),
    ("train --out around the data root", lambda e: with_out(train(e), e.tmp), 2,
     ["run directory {tmp} holds the dataset {data}"]),
    ("train --out a link into a dataset",
     lambda e: (e.tmp/"link").symlink_to(e.data/"gta5") or with_out(train(e), e.tmp/"link"), 2,
     ["run directory {tmp}/link lies inside the dataset {data}"]),
    ("train --out inside tauda's package", lambda e: with_out(train(e), Path(tauda.__file__).parent/"runs"), 2,
     ["lies inside tauda's source tree"]),
    ("train --out a source tree",
     lambda e: (e.tmp/"project"/".git").mkdir(parents=True) or with_out(train(e), e.tmp/"project"), 2,
     ["run directory {tmp}/project is a source tree (it holds .git)"]),
    ("train --out a folder of the user's", lambda e: with_out(train(e), users_folder(e)), 2,
     ["run directory {tmp}/notes is not empty and holds no .tauda-output.json", "choose another --out"]),
    ("train --out a dangling link", lambda e: with_out(train(e), dangling(e.tmp/"gone")), 2,
     ["run directory {tmp}/gone: {tmp}/gone is a dangling symbolic link"]),
    ("train again into a finished run, without --resume", lambda e: earlier_run(e), 2,
     ["run directory {run} already holds a run (its last checkpoint is at iteration 2, evaluated)",
      "continue it with --resume, or choose a new --out"]),
    ("train again into a run stopped before its first checkpoint", partial_run, 2,
     ["run directory {run} already holds a run (no checkpoint yet)", "continue it with --resume"]),
    ("--resume with a changed loss weight", lambda e: earlier_run(e, "method.target.weight=0.3", args=["--resume"]), 2,
     ["--resume: this command changes what the run was trained with: method.target.weight=0.01→0.3",
      "only schedule.*, log.*"]),
    ("--resume with two changed settings",
     lambda e: earlier_run(e, "optim.momentum=0.5", "seed=3", args=["--resume"]), 2,
     ["optim.momentum=0.9→0.5; seed=0→3 (run→now)"]),
    ("--resume with fewer iterations than the run has done",
     lambda e: earlier_run(e, "schedule.iterations=1", args=["--resume"]), 2,
     ["the run is at iteration 2, past schedule.iterations=1"]),
    ("--resume while another process writes the run", held_run, 2,
     ["run directory {run} is in use by another tauda process (pid", "one writer per folder"]),
    ("train --out a folder of another command", lambda e: with_out(train(e), marked(e.tmp/"pl", "pseudo-label")), 2,
     ["run directory {tmp}/pl holds the output of `tauda pseudo-label`, not of `tauda train`"]),
    ("an output marker cut short",
     lambda e: (marked(e.run, "train")/MARKER).write_text('{"command": "tr') and train(e), 2,
     ["{run}/.tauda-output.json: cut short or not a tauda output marker"]),
    ("an output marker naming a file outside its folder",
     lambda e: marked(e.run, "train", files=["../../escape.txt"]) and train(e), 2,
     ["{run}/.tauda-output.json: not a tauda output marker (its lists of names are damaged)"]),
    ("pseudo-label --overwrite onto the dataset itself",
     lambda e: pseudo(e, e.data/"cityscapes", "--overwrite"), 2,
     ["pseudo-label folder {data}/cityscapes is the dataset {data}/cityscapes: tauda never writes into a dataset"]),
    ("pseudo-label --out inside the dataset's labels", lambda e: pseudo(e, e.data/"cityscapes"/"gtFine"/"pl"), 2,
     ["pseudo-label folder {data}/cityscapes/gtFine/pl lies inside the dataset {data}/cityscapes"]),
    ("pseudo-label --overwrite into a folder of the user's", lambda e: pseudo(e, users_folder(e), "--overwrite"), 2,
     ["pseudo-label folder {tmp}/notes is not empty and holds no .tauda-output.json"]),
    ("pseudo-label --out a run directory", lambda e: pseudo(e, marked(e.run, "train")), 2,
     ["pseudo-label folder {run} holds the output of `tauda train`"]),
    ("pseudo-label manifest of the wrong type",
     lambda e: (marked(e.tmp/"pl", "pseudo-label", files=["pseudo_labels.json"])/"pseudo_labels.json")
     .write_text("[1, 2]") and pseudo(e, e.tmp/"pl"), 2,
     ["{tmp}/pl/pseudo_labels.json: not a pseudo-label manifest (the file holds an array, not an object)",
      "pass --overwrite to replace it"]),
    ("eval of a checkpoint kept outside a run directory",
     lambda e: (e.tmp/"kept").mkdir() or ["eval", str(shutil.copy(e.source, e.tmp/"kept"/"model.pt"))], 2,
     ["output folder {tmp} is not empty and holds no .tauda-output.json"]),
    ("eval --out the data root", lambda e: ["eval", str(e.source), "--data-root", str(e.data), "--out", str(e.data)],
     2, ["output folder {data} is the dataset {data}"]),
    ("pipeline --out a folder of the user's",
     lambda e: ["pipeline", "mini", "--quiet", "--data-root", str(e.data), "--out", str(users_folder(e)),
                *sets(*BASE)], 2, ["pipeline folder {tmp}/notes is not empty"]),
    ("pipeline --set of a stage's init",
     lambda e: ["pipeline", "mini", "--quiet", "--data-root", str(e.data), "--out", str(e.run),
                *sets(*BASE, f"stage1:init={e.source}")], 2,
     ["--set 'stage1:init={source}': the pipeline sets init of every stage itself",
      "tauda train NAME-STAGE --set init=CHECKPOINT"]),
    ("pipeline --set of the method",
     lambda e: ["pipeline", "mini", "--quiet", "--data-root", str(e.data), "--out", str(e.run),
                *sets(*BASE, "method.name=minent")], 2, ["the pipeline sets method.name of every stage itself"]),
    ("demo --out a folder of the user's", lambda e: ["demo", "--out", str(users_folder(e)), "--iterations", "1"], 2,
     ["demo folder {tmp}/notes is not empty"]),
    ("demo --out a run directory", lambda e: ["demo", "--out", str(marked(e.run, "train")), "--iterations", "1"], 2,
     ["demo folder {run} holds the output of `tauda train`, not of `tauda demo`"]),
    ("demo --seed -1", lambda e: ["demo", "--out", str(e.tmp/"demo"), "--seed", "-1"], 2,
     ["seed=-1 (expected 0 <= seed < 2^63"]),
    ("check-data --json inside the dataset",
     lambda e: ["check-data", "gta5", str(e.data/"gta5"), "--json", str(e.data/"gta5"/"report.json")], 2,
     ["--json {data}/gta5/report.json lies inside the dataset {data}/gta5"]),
    ("check-data --json over a user's file",
     lambda e: ["check-data", "gta5", str(e.data/"gta5"), "--json", str(e.file)], 2,
     ["--json {file} exists and is not a file tauda wrote", "choose another name"]),
    ("check-data --json a folder",
     lambda e: ["check-data", "gta5", str(e.data/"gta5"), "--json", str(users_folder(e))], 2,
     ["--json {tmp}/notes: is a folder, not a file"]),
    ("study --out a folder of the user's", lambda e: study(e)[:-4] + ["--out", str(users_folder(e)), "--results",
                                                                       str(e.tmp/"results")], 2,
     ["study folder {tmp}/notes is not empty"]),
    ("study --results a folder of other JSON files",
     lambda e: users_folder(e, "results") and (e.tmp/"results"/"notes.json").write_text("{}") and study(e), 2,
     ["results folder {tmp}/results is not empty and holds no .tauda-output.json"]),
    # ---- numbers as people write them, and their bounds
    ("learning rate of infinity", lambda e: train(e, "optim.lr=.inf"), 2, ["optim.lr: inf is not a finite number"]),
    ("loss weight nan", lambda e: train(e, "method.target.weight=nan"), 2,
     ["method.target.weight: nan is not a finite number"]),
    ("a scale beyond the floats", lambda e: train(e, "data.scales=[1.0, 1e999]"), 2,
     ["data.scales: inf is not a finite number"]),
    ("an integer too large for a float field", lambda e: train(e, "optim.lr=1" + "0"*400), 2,
     ["optim.lr: 1000", "is not a finite number (too large)"]),
    ("negative seed", lambda e: train(e, "seed=-1"), 2, ["seed=-1 (expected 0 <= seed < 2^63"]),
    ("seed beyond the generators", lambda e: train(e, f"seed={2**64}"), 2, [f"seed={2**64} (expected 0 <= seed"]),
    ("a batch of a hundred thousand images", lambda e: train(e, "data.batch_size=100000"), 2,
     ["data.batch_size=100000 (expected at most 4096)"]),
    ("a hundred thousand loader workers", lambda e: train(e, "data.num_workers=100000"), 2,
     ["data.num_workers=100000 (expected 0 to 256 processes)"]),
    ("a probability above 1 in the strong view", lambda e: train(e, "views.flip_p=1.5"), 2,
     ["views.flip_p=1.5 (expected in [0, 1])"]),
    ("crop larger than the target images",
     lambda e: train(e, "data.target_size=[32,64]", "data.crop=[64,128]", "data.scales=[1.0]"), 2,
     ["data.crop=[64,128] is larger than the target images even at their largest scale (32×64"]),
    ("a learning rate beyond any use", lambda e: train(e, "optim.lr=1e38"), 2,
     ["optim.lr=1e+38 (expected a positive number below 1e6)"]),
    ("study --threads -2", lambda e: study(e, "--threads", "-2"), 2, ["--threads: expected 0 to 1024, got -2"]),
    ("study --seeds -1", lambda e: study(e)[:4] + ["-1"] + study(e)[5:], 2,
     ["--seeds -1: expected 0 <= seed < 2^63"]),
    ("check-data --workers 0", lambda e: ["check-data", "gta5", str(e.data/"gta5"), "--workers", "0"], 2,
     ["--workers: expected 1 to 256, got 0"]),
    ("pseudo-label --num-workers 100000", lambda e: pseudo(e, e.tmp/"pl", "--num-workers", "100000"), 2,
     ["--num-workers: expected at most 256, got 100000"]),
    # ---- files of the wrong kind, encoding or type, links to nothing, where a run executes
    ("split file in Latin-1", lambda e: (e.data/"gta5/train.txt").write_bytes(b"00001.png\nd\xe9j\xe0.png\n") and
     train(e), 2, ["{data}/gta5/train.txt: not UTF-8 text (byte 0xe9 at position 11)", "save the split file as UTF-8"]),
    ("split file in UTF-16 without a byte-order mark",
     lambda e: (e.data/"gta5/train.txt").write_bytes("00001.png\n".encode("utf-16-le")) and train(e), 2,
     ["{data}/gta5/train.txt: holds NUL characters (UTF-16 without a byte-order mark?)"]),
    ("a source image that is a dangling link",
     lambda e: e.first("gta5/images/*.png").unlink() or dangling(e.data/"gta5/images/00001.png") and train(e), 2,
     ["{data}/gta5/images/00001.png: a dangling symbolic link (to {data}/gta5/images/moved-away)"]),
    ("a target image that is a dangling link",
     lambda e: [p.unlink() for p in e.every("cityscapes/leftImg8bit/train/*/*.png")[:1]] and
     dangling(e.data/"cityscapes/leftImg8bit/train/fixture/fixture_000000_000019_leftImg8bit.png") and
     train(e, "method.name=minent"), 2,
     ["{data}/cityscapes/leftImg8bit/train/fixture/fixture_000000_000019_leftImg8bit.png: a dangling symbolic link"]),
    ("data root that is a dangling link",
     lambda e: train(e)[:3] + ["--data-root", str(dangling(e.tmp/"dlink"))] + train(e)[5:], 2,
     ["data root {tmp}/dlink is a dangling symbolic link (to {tmp}/moved-away)"]),
    ("eval of a dangling link", lambda e: ["eval", str(dangling(e.tmp/"last.pt"))], 2,
     ["{tmp}/last.pt: checkpoint not found (a dangling symbolic link to {tmp}/moved-away)"]),
    ("TAUDA_CACHE that is a file", unusable_cache, 2,
     ["cannot write minicity to {file}/minicity-", "set TAUDA_CACHE to a writable folder"]),
    ("device mps on a machine without it", lambda e: train(e, "device=mps"), 2,
     ["device='mps' but this machine has no Apple GPU (MPS)"]),
    ("a device tauda does not run on", lambda e: train(e, "device=meta"), 2,
     ["device='meta': tauda runs on cpu, cuda or cuda:N (auto chooses), not on meta"]),
    ("pseudo-label --device mps", lambda e: pseudo(e, e.tmp/"pl", "--device", "mps"), 2,
     ["device='mps' but this machine has no Apple GPU (MPS)"]),
    ("init from another program's checkpoint",
     lambda e: train(e, f"init={foreign_checkpoint(e, iteration='3k')}", preset="mini-stage1"), 2,
     ["{tmp}/other.pt: not a tauda checkpoint (entries of the wrong type: iteration)"]),
    ("eval of a checkpoint whose config is a list",
     lambda e: ["eval", str(foreign_checkpoint(e, config=[1, 2]))], 2,
     ["{tmp}/other.pt: not a tauda checkpoint (entries of the wrong type: config)"]),
    ("--resume from a checkpoint stripped for inference", stripped_last, 2,
     ["--resume: {run}/checkpoints/last.pt holds no optimizer, method, rng", "a checkpoint to evaluate or start from"]),
    ("--resume of a run whose log is damaged", damaged_log, 2,
     ["{run}/log.jsonl: line 1 is not a JSON object ('# my notes')", "the training log is damaged"]),
    ("--import of a module that raises", raising_module, 2,
     ["cannot import 'raising_extension'", "RuntimeError: no GPU licence found"]),
]


def test_the_catalogue_holds_at_least_95_distinct_cases():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) >= 95


@pytest.fixture(scope="module")
def earlier(layouts, tmp_path_factory) -> Path:
    "A finished run of `train(env, *EARLIER)` (2 iterations of mini-source on a copy of the fixture datasets)."
    tmp = tmp_path_factory.mktemp("earlier")
    env = Env(tmp/"data", None, tmp, None, None)
    shutil.copytree(layouts, env.data)
    with pytest.raises(SystemExit) as exit_: main(train(env, *EARLIER))
    assert exit_.value.code == 0
    return env.run


def snapshot(folder: Path) -> dict:
    "Every file and link under `folder`: its bytes (a link: its target), the lock files of runs aside."
    return {p: os.readlink(p) if p.is_symlink() else p.read_bytes() for p in folder.rglob("*")
            if (p.is_symlink() or p.is_file()) and p.name != ".tauda-lock"}


@pytest.mark.parametrize("build, code, words", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_gives_one_clear_line(layouts, source_run, earlier, tmp_path, capsys, monkeypatch, build, code,
                                        words):
    env = Env(tmp_path/"data", source_run.checkpoint, tmp_path, tmp_path/"a-file", monkeypatch, earlier)
    shutil.copytree(layouts, env.data)
    env.file.write_text("a regular file, where a folder is expected\n")
    argv = build(env)
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_: main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == code, f"exit status {exit_.value.code}; stderr: {err[-2000:]}"
    assert "Traceback" not in err + out
    if code == 2: text = error_line(err, argv[0])  # a user error: one line on stderr, the command's name first
    else: text = out  # check-data found problems: its report names them
    assert not text.split("error: ", 1)[-1].startswith("None"), text
    for word in words:
        word = word.format(data=env.data, run=env.run, tmp=env.tmp, file=env.file, source=env.source)
        assert word in text, f"{word!r} not in {text!r}"
    after = snapshot(tmp_path)
    lost = [str(p) for p in before if p not in after or after[p] != before[p]]
    assert not lost, f"changed or removed by a refused command: {lost}"
