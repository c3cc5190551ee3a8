"""Run by `torchrun` in tests/test_training.py: train with DistributedDataParallel (gloo, CPU) and save this
rank's final weights and thresholds. Usage: torchrun --nproc_per_node 2 ddp_worker.py CONFIG.yaml OUT"""
import sys
from pathlib import Path

import torch

from tauda.config import load_config
from tauda.runtime import rank_and_world
from tauda.train import Trainer

cfg_path, out = sys.argv[1], Path(sys.argv[2])
trainer = Trainer(load_config(cfg_path), out/"run", progress=False)
trainer.fit()
rank, world = rank_and_world()
torch.save({"model": trainer.model.state_dict(), "thresholds": trainer.method.rule.thresholds, "world": world},
           out/f"rank{rank}.pt")
