"""Hidden grader of assignment 4 (the open problem): is the leaderboard entry honest? The score is not graded.

A submission holds the student's module(s) and the `record.json` that `tauda leaderboard` wrote. Every check takes
`(record, folder, protocol)` and raises AssertionError when the record breaks the protocol: the seeds, the split, the
schedule and data, what an entry may change, the same parent model as the baseline, the training budget, the code
that ran and the arithmetic of the row. `check_rerun` trains one seed of the entry again from the record and compares.
"""
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

ENTRY_FIELDS = ("method.", "views.", "imports")


@dataclass(frozen=True)
class Protocol:
    "What a ranked entry follows (the tests use a tiny one: two seeds, two iterations, a small minicity)."
    seeds: tuple = (0, 1, 2)
    iterations: int = 0           # 0: the preset's
    minicity: str = ""            # the fingerprint of the minicity; "": the standard one
    budget: float = 600.0

    def fingerprint(self) -> str:
        from tauda.minicity import MinicitySpec
        return self.minicity or MinicitySpec().fingerprint()


def read(folder) -> dict:
    "The record of the submission folder (`record.json`)."
    path = Path(folder)/"record.json"
    assert path.is_file(), f"no record.json in {folder}: hand in the one `tauda leaderboard` wrote"
    return json.loads(path.read_text())


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict): out.update(flat(v, f"{prefix}{k}."))
        else: out[prefix + k] = v
    return out


def runs(record):
    "Per seed: (seed, the entry's flattened config, the baseline's flattened config, the row)."
    for row in record["per_seed"]:
        yield row["seed"], flat(row["entry_request"]["config"]), flat(row["baseline_request"]["config"]), row


def check_seeds(record, folder, protocol):
    assert record["seeds"] == list(protocol.seeds), f"seeds {record['seeds']}, the protocol's are {protocol.seeds}"
    assert [r["seed"] for r in record["per_seed"]] == list(protocol.seeds), "not every seed was trained"
    for seed, entry, base, _ in runs(record):
        assert entry["seed"] == base["seed"] == seed, f"seed {seed}: the runs used {entry['seed']}, {base['seed']}"


def check_split(record, folder, protocol):
    assert record["split"] == "tune", f"evaluated on {record['split']!r}, not on tune"
    for seed, entry, base, _ in runs(record):
        assert entry["data.eval_split"] == base["data.eval_split"] == "tune", f"seed {seed}: not evaluated on tune"


def check_schedule_and_data(record, folder, protocol):
    from tauda.config import get_preset
    iterations = protocol.iterations or get_preset(record["preset"]).schedule.iterations
    assert record["minicity"] == protocol.fingerprint(), "trained on another minicity than the protocol's"
    for seed, entry, base, _ in runs(record):
        assert entry["schedule.iterations"] == base["schedule.iterations"] == iterations, \
            f"seed {seed}: {entry['schedule.iterations']} iterations, the protocol's are {iterations}"
        assert entry["data_root"] == base["data_root"], f"seed {seed}: entry and baseline on different data"


def check_entry_changes_method_fields_only(record, folder, protocol):
    for seed, entry, base, _ in runs(record):
        changed = sorted(k for k in entry.keys() | base.keys() if entry.get(k) != base.get(k))
        wrong = [k for k in changed if not k.startswith(ENTRY_FIELDS) or k == "method.name"]
        assert not wrong, f"seed {seed}: the entry also changes {wrong} (an entry changes method.* and views.* only)"


def check_baseline_is_the_preset(record, folder, protocol):
    from tauda.config import apply_overrides, get_preset, to_dict
    for seed, _, base, row in runs(record):
        sets = [f"seed={seed}", "data.eval_split=tune"] + \
            ([f"schedule.iterations={protocol.iterations}"] if protocol.iterations else [])
        preset = flat(to_dict(apply_overrides(get_preset(record["preset"]), sets)))
        changed = sorted(k for k in preset if k not in ("data_root", "init") and preset[k] != base.get(k))
        assert not changed, f"seed {seed}: the baseline is not {record['preset']} as it stands: {changed}"


def check_same_parent(record, folder, protocol):
    for seed, _, _, row in runs(record):
        entry, base = row["entry_request"]["init_sha1"], row["baseline_request"]["init_sha1"]
        assert entry and entry == base, f"seed {seed}: the entry and its baseline start from different models"


def check_budget(record, folder, protocol):
    assert record["budget_s"] <= protocol.budget, f"a budget of {record['budget_s']} s > {protocol.budget}"
    spent = sum(r["seconds"] for r in record["per_seed"])
    assert abs(record["seconds"] - spent) < 0.5, "the total time is not the sum of the runs' times"
    assert spent <= record["budget_s"], f"{spent:.0f} s of training, over the budget of {record['budget_s']:.0f} s"


def check_code(record, folder, protocol):
    for name, module in record["modules"].items():
        path = Path(folder)/f"{name}.py"
        assert path.is_file(), f"the record imports {name}, which the submission does not hold"
        assert hashlib.sha1(path.read_bytes()).hexdigest() == module["sha1"], \
            f"{name}.py is not the file that was trained (it changed after the run)"
    for seed, entry, _, _ in runs(record):
        assert entry["imports"] == ",".join(record["modules"]), f"seed {seed}: other modules imported"


def check_numbers(record, folder, protocol):
    from tauda.experiments import paired_difference
    d = paired_difference([r["entry"] for r in record["per_seed"]], [r["baseline"] for r in record["per_seed"]])
    for key in ("mean", "low", "high"):
        assert math.isclose(record["difference"][key], d[key], abs_tol=1e-9), f"the row's {key} is not the seeds' one"


CHECKS = [check_seeds, check_split, check_schedule_and_data, check_entry_changes_method_fields_only,
          check_baseline_is_the_preset, check_same_parent, check_budget, check_code, check_numbers]


class CannotRerun(Exception):
    "This machine cannot train the record's runs bit for bit (another kind of CPU)."


def check_rerun(record, folder, protocol, runs_root, data_root="", tolerance: float = 0.01, seed=None):
    """Train the entry again for one seed (the last by default) from the record's sets and modules, from a parent
    trained the protocol's way into `runs_root`, with the record's thread count; the config must be the record's and
    the mIoU within `tolerance`. Training is exact only on the same kind of CPU: on another, `CannotRerun` says which
    capability to force (`ATEN_CPU_CAPABILITY`)."""
    import torch
    here = torch.backends.cpu.get_cpu_capability()
    if record.get("cpu") != here:
        raise CannotRerun(f"the record was trained with CPU capability {record.get('cpu')}, this machine uses {here}: "
                          f"run the grader with ATEN_CPU_CAPABILITY={str(record.get('cpu')).lower()} if the CPU has it")
    threads = torch.get_num_threads()
    torch.set_num_threads(record["threads"])
    try: _rerun(record, folder, protocol, runs_root, data_root, tolerance, seed)
    finally: torch.set_num_threads(threads)


def _rerun(record, folder, protocol, runs_root, data_root, tolerance, seed):
    from tauda.experiments import STAGE_PRESETS, experiment, parent_run
    seed = record["seeds"][-1] if seed is None else seed
    row = next(r for r in record["per_seed"] if r["seed"] == seed)
    shrink = [f"schedule.iterations={protocol.iterations}"] if protocol.iterations else []
    init = parent_run(record["stage"] - 1, seed, *shrink, root=runs_root, data_root=data_root)[1]
    assert hashlib.sha1(init.read_bytes()).hexdigest() == row["entry_request"]["init_sha1"], \
        "the parent model trained again differs from the record's (another CPU kind or thread count?)"
    if str(folder) not in sys.path: sys.path.insert(0, str(folder))
    report = experiment(f"rerun-{record['entry']}-s{seed}", STAGE_PRESETS[record["stage"]], f"seed={seed}", *shrink,
                        f"init={init}", "data.eval_split=tune", *record["sets"],
                        f"imports={','.join(record['modules'])}", root=runs_root, cached=False, data_root=data_root)
    config = json.loads((Path(runs_root)/f"rerun-{record['entry']}-s{seed}"/"experiment.json").read_text())["config"]
    mine, theirs = flat(config), flat(row["entry_request"]["config"])
    changed = sorted(k for k in mine if k not in ("data_root", "init") and mine[k] != theirs.get(k))
    assert not changed, f"seed {seed}: the record's config is not what its sets give: {changed}"
    assert abs(report["target"]["miou"] - row["entry"]) <= tolerance, \
        f"seed {seed}: trained again, the entry scores {report['target']['miou']}, the record says {row['entry']}"
