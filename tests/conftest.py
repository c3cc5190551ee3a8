"""Set-up that the test modules share, built once per test session (and only if a collected test asks for it):

- `minicity`: a small minicity (`minicity_spec()`), the data of every test that trains on the mini benchmark;
- `source_run`: a 4-iteration source-only run on it (tiny net, minicity10), a checkpoint after every iteration;
- `stage1_run`: a 2-iteration stage-one run from `source_run`'s last checkpoint;
- `layouts`: fixture datasets in the real on-disk layouts (GTA5, SYNTHIA, Cityscapes), 32×64, for the tests of the
  real readers, the fault injection and the bad-input catalogue (their file names are the layouts' own).

All of them are read-only for the tests: a test writes its own runs, exports and copies under its own `tmp_path`.
tauda is imported inside the fixtures, so that collecting a module that needs none of them imports no torch.
Helpers that are not fixtures (command-line items, run logs, one-line errors) are in helpers.py.
"""
from dataclasses import dataclass
from pathlib import Path

import pytest

LAYOUT_SIZE = (32, 64)  # (h, w) of the fixture datasets
SOURCE_SETS = ["schedule.iterations=4", "schedule.checkpoint_every=1", "schedule.log_every=1", "data.batch_size=2",
               "schedule.eval_batch_size=4", "log.tensorboard=false"]
STAGE1_SETS = ["schedule.iterations=2", "method.thresholds.tau0=0.5", "schedule.log_every=1", "data.batch_size=2",
               "schedule.eval_batch_size=4", "log.tensorboard=false"]


def minicity_spec():
    """The one minicity of the suite: 8 source training images (2 held out), 8 target training images, 4 val (the
    study keeps maps of the first 4), 2 tune. Every module that trains uses it: the sizes matter only for the cost."""
    from tauda.minicity import MinicitySpec
    return MinicitySpec(n_source=8, n_source_val=2, n_target_train=8, n_target_val=4, n_target_tune=2)


@dataclass(frozen=True)
class Minicity:
    "A minicity written for `spec` in the folder `root` (pass it as `--data-root`, or `data_root=`)."
    root: Path
    spec: object  # tauda.minicity.MinicitySpec


@dataclass(frozen=True)
class Run:
    "A finished training run: its run directory `folder` and the configuration it ran with."
    folder: Path
    config: object  # tauda.config.Config

    @property
    def checkpoint(self) -> Path: return self.folder/"checkpoints"/"last.pt"

    @property
    def iterations(self) -> int: return self.config.schedule.iterations

    @property
    def data(self) -> Path: return Path(self.config.data_root)


def train(preset: str, data: Path, out: Path, *sets) -> Run:
    "Train `preset` on `data` with `--set` items `sets`, quietly, into the run directory `out`."
    from tauda.config import apply_overrides, get_preset
    from tauda.train import Trainer
    cfg = apply_overrides(get_preset(preset), [f"data_root={data}", *sets])
    Trainer(cfg, out, progress=False).fit()
    return Run(out, cfg)


@pytest.fixture(scope="session")
def minicity(tmp_path_factory) -> Minicity:
    from tauda.minicity import ensure_minicity
    spec = minicity_spec()
    return Minicity(ensure_minicity(tmp_path_factory.mktemp("minicity")/"minicity", spec, progress=False), spec)


@pytest.fixture(scope="session")
def source_run(minicity, tmp_path_factory) -> Run:
    "4 iterations of `mini-source` on `minicity`, batch 2, a checkpoint after every iteration (iter_000001.pt …)."
    return train("mini-source", minicity.root, tmp_path_factory.mktemp("source")/"run", *SOURCE_SETS)


@pytest.fixture(scope="session")
def stage1_run(minicity, source_run, tmp_path_factory) -> Run:
    "2 iterations of `mini-stage1` from `source_run`, batch 2, τ0 = 0.5 (thresholds that move from the first step)."
    return train("mini-stage1", minicity.root, tmp_path_factory.mktemp("stage1")/"run", f"init={source_run.checkpoint}",
                 *STAGE1_SETS)


@pytest.fixture(scope="session")
def layouts(tmp_path_factory) -> Path:
    """A data root of fixture datasets in the real layouts, 32×64, every raw label id in every label: `gta5/` and
    `synthia/` (4 images each), `cityscapes/` (6 training images, read without labels, and 2 val images)."""
    from tauda.data import write_fixture
    root = tmp_path_factory.mktemp("layouts")
    write_fixture("gta5", root/"gta5", n=4, size=LAYOUT_SIZE)
    write_fixture("synthia", root/"synthia", n=4, size=LAYOUT_SIZE)
    write_fixture("cityscapes", root/"cityscapes", n=6, size=LAYOUT_SIZE, split="train", seed=1)
    write_fixture("cityscapes", root/"cityscapes", n=2, size=LAYOUT_SIZE, split="val", seed=2)
    return root
