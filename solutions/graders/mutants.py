"""Plausible wrong implementations, each of which the hidden grader must reject (and the reference must pass).

For assignments 1–3 a mutant is a small patch of the reference solution's source (`old` → `new`, `old` occurring
exactly once), so that it stays in step with the reference; for assignment 4 it is an edit of an honest leaderboard
record. `tests/test_assignments.py` applies every mutant and runs the unit-level checks on it.
"""
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .common import Submission, load_source

SOLUTIONS = Path(__file__).resolve().parents[1]
MODULES = {"a1": "a1_thresholds", "a2": "a2_maxsquare", "a3": "a3_cutmix"}


@dataclass(frozen=True)
class Mutant:
    name: str
    old: str
    new: str


A1 = [
    Mutant("rank ⌊π n⌋ instead of ⌈π n⌉", "max(1, math.ceil(portion*len(values)))",
           "max(1, math.floor(portion*len(values)))"),
    Mutant("0-based rank: one past the k-th largest", "psi[c] = torch.topk(values, k).values[-1]",
           "psi[c] = values.sort(descending=True).values[min(k, len(values) - 1)]"),
    Mutant("the k-th smallest instead of the k-th largest", "torch.topk(values, k).values[-1]",
           "torch.topk(values, k, largest=False).values[-1]"),
    Mutant("> instead of ≥", "(conf.double() >= self.thresholds", "(conf.double() > self.thresholds"),
    Mutant("mask from the thresholds before the update (stale state)",
           "        self.thresholds = theta.clamp(max=0.999)\n"
           "        return (conf.double() >= self.thresholds.to(conf.device)[cls]) & sel\n",
           "        mask = (conf.double() >= self.thresholds.to(conf.device)[cls]) & sel\n"
           "        self.thresholds = theta.clamp(max=0.999)\n        return mask\n"),
    Mutant("invalid pixels in the statistics", "class_quantile(conf[sel], cls[sel],",
           "class_quantile(conf.flatten(), cls.flatten(),"),
    Mutant("invalid pixels kept in the mask", "self.thresholds.to(conf.device)[cls]) & sel",
           "self.thresholds.to(conf.device)[cls])"),
    Mutant("absent classes decay towards 0",
           "torch.where(present, self.beta*self.thresholds + (1 - self.beta)*psi, self.thresholds)",
           "self.beta*self.thresholds + (1 - self.beta)*psi"),
    Mutant("momentum the wrong way round", "self.beta*self.thresholds + (1 - self.beta)*psi",
           "(1 - self.beta)*self.thresholds + self.beta*psi"),
    Mutant("no cap below 1", "self.thresholds = theta.clamp(max=0.999)", "self.thresholds = theta"),
    Mutant("capped only at θ ≥ 1 (the adaptive rule's way)", "self.thresholds = theta.clamp(max=0.999)",
           "self.thresholds = torch.where(theta >= 1, torch.full_like(theta, 0.999), theta)"),
    Mutant("one quantile over all classes", "values = conf[cls == c].double()\n        if len(values) == 0: continue",
           "values = conf.double()\n        if not (cls == c).any(): continue"),
    Mutant("thresholds kept in float32", "self.thresholds = theta.clamp(max=0.999)",
           "self.thresholds = theta.clamp(max=0.999).float()"),
]

A2 = [
    Mutant("missing ½", "return -0.5*(logits.softmax(1)**2).sum(1)", "return -(logits.softmax(1)**2).sum(1)"),
    Mutant("softmax over the wrong dimension", "return -0.5*(logits.softmax(1)**2).sum(1)",
           "return -0.5*(logits.softmax(-1)**2).sum(1)"),
    Mutant("a softmax that overflows", "return -0.5*(logits.softmax(1)**2).sum(1)",
           "return -0.5*((logits.exp()/logits.exp().sum(1, keepdim=True))**2).sum(1)"),
    Mutant("the mask ignored by the plain loss", "return per_pixel[keep].mean()", "return per_pixel.mean()"),
    Mutant("the plain loss divided by every pixel", "return per_pixel[keep].mean()",
           "return (per_pixel*keep).sum()/per_pixel.numel()"),
    Mutant("class counts over every pixel, kept or not", "keep.reshape(B, -1).double())",
           "torch.ones_like(keep.reshape(B, -1), dtype=torch.float64))"),
    Mutant("the exponents swapped", "counts.clamp(min=1)**(-alpha)*total.clamp(min=1)**(alpha - 1)",
           "counts.clamp(min=1)**(alpha - 1)*total.clamp(min=1)**(-alpha)"),
    Mutant("N_b counted over the batch", "total = counts.sum(1, keepdim=True)", "total = counts.sum()"),
    Mutant("divided by the images with kept pixels", "return (pixel_w*per_pixel*keep).sum()/len(pred)",
           "return (pixel_w*per_pixel*keep).sum()/keep.flatten(1).any(1).sum()"),
    Mutant("0 instead of None when nothing is kept", "if not keep.any(): return None",
           "if not keep.any(): return logits.sum()*0"),
    Mutant("no gradient (probabilities detached)", "per_pixel = maxsquare_map(logits)",
           "per_pixel = maxsquare_map(logits.detach())"),
    Mutant("image-wise default α = 0.5", "def __init__(self, alpha: float = 0.2",
           "def __init__(self, alpha: float = 0.5"),
]

A3 = [
    Mutant("box sides truncated instead of rounded",
           "h, w = round(height*math.sqrt(area)), round(width*math.sqrt(area))",
           "h, w = int(height*math.sqrt(area)), int(width*math.sqrt(area))"),
    Mutant("box sides scaled by the area, not its square root",
           "h, w = round(height*math.sqrt(area)), round(width*math.sqrt(area))",
           "h, w = round(height*area), round(width*area)"),
    Mutant("the last position never drawn", "top = int(torch.randint(height - h + 1, (), generator=g))",
           "top = int(torch.randint(max(height - h, 1), (), generator=g))"),
    Mutant("a uniform centre, the box pushed inside (border positions too likely)",
           "top = int(torch.randint(height - h + 1, (), generator=g))\n"
           "    left = int(torch.randint(width - w + 1, (), generator=g))",
           "top = min(max(int(torch.randint(height, (), generator=g)) - h//2, 0), height - h)\n"
           "    left = min(max(int(torch.randint(width, (), generator=g)) - w//2, 0), width - w)"),
    Mutant("the box drawn from the global random state", "top = int(torch.randint(height - h + 1, (), generator=g))",
           "top = int(torch.randint(height - h + 1, ()))"),
    Mutant("one seed for the whole batch", "g = torch.Generator().manual_seed(int(seed))",
           "g = torch.Generator().manual_seed(int(seeds[0]))"),
    Mutant("no DACS weights", "weights = torch.where(pasted, torch.ones_like(target_weight), target_weight)",
           "weights = torch.ones(pasted.shape)"),
    Mutant("DACS with > instead of ≥", "(confidence >= self.pseudo_conf)", "(confidence > self.pseudo_conf)"),
    Mutant("one DACS weight for the whole batch", ".float().mean((1, 2))[:, None, None]",
           ".float().mean().expand(len(seeds))[:, None, None]"),
    Mutant("ignored source pixels take the pseudo-label", "labels.append(torch.where(mask, ys[k], pseudo[k]))",
           "labels.append(torch.where(mask & (ys[k] != 255), ys[k], pseudo[k]))"),
    Mutant("target pasted into source", "image = torch.where(mask, xs[k], xt[k])",
           "image = torch.where(mask, xt[k], xs[k])"),
    Mutant("the target image changed in place", "image = torch.where(mask, xs[k], xt[k])",
           "image = xt[k]\n            image[:, mask] = xs[k][:, mask]"),
    Mutant("no photometric augmentation", "images.append(photometric(image, g, self.views))", "images.append(image)"),
]

MUTANTS = {"a1": A1, "a2": A2, "a3": A3}


def reference(assignment: str) -> Submission:
    "The reference solution of `assignment`, loaded as a submission."
    path = SOLUTIONS/f"{MODULES[assignment]}.py"
    return load_source(path.read_text(), MODULES[assignment], str(path))


def apply(assignment: str, mutant: Mutant) -> Submission:
    "The reference solution with `mutant`'s patch applied, loaded as a submission."
    path = SOLUTIONS/f"{MODULES[assignment]}.py"
    source = path.read_text()
    assert source.count(mutant.old) == 1, f"{assignment} mutant {mutant.name!r}: its patch no longer applies"
    return load_source(source.replace(mutant.old, mutant.new), f"{MODULES[assignment]}_mutant", str(path))


# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordMutant:
    name: str
    edit: Callable      # edits a copy of the record in place; `folder` is the submission folder (for its module)


def _configs(record, which="entry_request"):
    return [row[which]["config"] for row in record["per_seed"]]


def _other_seed(r, folder):
    r["seeds"][-1] = r["per_seed"][-1]["seed"] = r["seeds"][-1] + 1
    for which in ("entry_request", "baseline_request"): r["per_seed"][-1][which]["config"]["seed"] += 1


def _drop_seed(r, folder):
    r["seeds"].pop(); r["per_seed"].pop()
    r["seconds"] = round(sum(row["seconds"] for row in r["per_seed"]), 1)
    _recompute(r)


def _recompute(r):
    from tauda.experiments import paired_difference
    rows = r["per_seed"]
    r["difference"] = paired_difference([row["entry"] for row in rows], [row["baseline"] for row in rows])


def _typed(r, folder, consistent):
    for row in r["per_seed"]: row["entry"] = round(row["entry"] + 5, 2)
    if consistent: _recompute(r)


def _edit_module(r, folder):
    path = Path(folder)/f"{next(iter(r['modules']))}.py"
    path.write_text(path.read_text() + "\n# tuned after the run\n")


def _over_budget(r, folder):
    extra = r["budget_s"] + 1 - r["seconds"]
    r["per_seed"][0]["seconds"] += extra
    r["seconds"] += extra


RECORD_MUTANTS = [
    RecordMutant("another seed than the protocol's", _other_seed),
    RecordMutant("a seed left out", _drop_seed),
    RecordMutant("the entry evaluated on val",
                 lambda r, f: [c["data"].update(eval_split="val") for c in _configs(r)]),
    RecordMutant("fewer iterations for entry and baseline",
                 lambda r, f: [c["schedule"].update(iterations=c["schedule"]["iterations"] - 1)
                               for c in _configs(r) + _configs(r, "baseline_request")]),
    RecordMutant("the entry's learning rate changed",
                 lambda r, f: [c["optim"].update(lr=2*c["optim"]["lr"]) for c in _configs(r)]),
    RecordMutant("over the budget", _over_budget),
    RecordMutant("a bigger budget", lambda r, f: r.update(budget_s=900.0)),
    RecordMutant("the module changed after the run", _edit_module),
    RecordMutant("better numbers typed in", lambda r, f: _typed(r, f, consistent=False)),
    RecordMutant("better numbers typed in, the row recomputed", lambda r, f: _typed(r, f, consistent=True)),
    RecordMutant("trained on another minicity", lambda r, f: r.update(minicity="0123456789ab")),
    RecordMutant("the baseline from another parent",
                 lambda r, f: r["per_seed"][0]["baseline_request"].update(init_sha1="0"*40)),
    RecordMutant("the baseline with other settings",
                 lambda r, f: [c["method"]["target"].update(weight=2*c["method"]["target"]["weight"])
                               for c in _configs(r) + _configs(r, "baseline_request")]),
]


def mutate(record: dict, folder, mutant: RecordMutant) -> dict:
    "A copy of `record` with `mutant`'s edit (which may also edit the module in `folder`)."
    r = copy.deepcopy(record)
    mutant.edit(r, folder)
    return r
