"""Hidden grader of assignment 3 (CutMix): the mixer against the notebook's definition of box mixing.

Every check takes a `Submission` and raises AssertionError when the behaviour is wrong. The checks read the box off
the `pasted` mask and test what the definition fixes — the box's size, the uniform law of its position, the mixed
image, label and weights, the randomness per sample — never how the random numbers are drawn.
"""
import math

import torch

from .common import close, registered


def plain_views():
    from tauda.views import StrongView
    return StrongView(brightness=0, contrast=0, saturation=0, sharpness=0, shadow_p=0, noise_p=0, blur_p=0,
                      equalize_p=0)


def mixer(sub, **options):
    "The registered mixer, built as the trainer builds it (plus `options`)."
    from tauda.cim import MIXERS
    with registered(MIXERS, "cutmix", sub.entry("mixer", "cutmix")):
        return MIXERS.build("cutmix", None, None, **{"long_tail_p": 0.3, "long_tail_classes": (2, 4),
                                                    "pseudo_conf": 0.968, "views": plain_views(), **options})


def inputs(B=3, H=12, W=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs, xt = torch.rand(B, 3, H, W, generator=g), torch.rand(B, 3, H, W, generator=g)
    ys, pseudo = torch.randint(0, 5, (B, H, W), generator=g), torch.randint(0, 5, (B, H, W), generator=g)
    ys[:, :, :3] = 255                                          # ignored source pixels
    confidence = torch.rand(B, H, W, generator=g)
    return xs, ys, xt, pseudo, confidence


def box_of(mask) -> tuple:
    "(top, left, rows, columns) of the bounding box of `mask` `[H, W]`, after checking it is one solid rectangle."
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    if len(rows) == 0: return 0, 0, 0, 0
    top, left, h, w = int(rows[0]), int(cols[0]), int(rows[-1]) - int(rows[0]) + 1, int(cols[-1]) - int(cols[0]) + 1
    assert int(mask.sum()) == h*w and mask[top:top + h, left:left + w].all(), "the pasted region is not one rectangle"
    return top, left, h, w


def boxes(sub, H, W, area, seeds):
    "The pasted mask of one sample per seed, for an `H` × `W` image."
    m = mixer(sub, area=area)
    x = torch.zeros(1, 3, H, W)
    y = torch.zeros(1, H, W, dtype=torch.long)
    return [m(x, y, x, y, torch.ones(1, H, W), torch.full((5,), 0.8), [s]).pasted[0] for s in seeds]


def check_built_like_cim(sub):
    m = mixer(sub, pseudo_conf=0.9)
    assert m.pseudo_conf == 0.9 and m.area == 0.5, "options pseudo_conf and area (default 0.5)"
    out = m(*inputs(), torch.full((5,), 0.8), [1, 2, 3])
    assert out.images.shape == (3, 3, 12, 16), f"images {tuple(out.images.shape)}"
    assert out.labels.shape == out.weights.shape == out.pasted.shape == (3, 12, 16), "labels etc.: [B, H, W]"
    assert out.labels.dtype == torch.int64 and out.pasted.dtype == torch.bool and out.weights.is_floating_point(), \
        f"dtypes: labels {out.labels.dtype}, pasted {out.pasted.dtype}, weights {out.weights.dtype}"


def check_box_geometry(sub):
    for (H, W), area in [((64, 128), 0.5), ((17, 31), 0.3), ((8, 8), 0.25), ((5, 40), 0.9), ((30, 20), 0.6)]:
        for mask in boxes(sub, H, W, area, range(6)):
            top, left, h, w = box_of(mask)
            assert (h, w) == (round(H*math.sqrt(area)), round(W*math.sqrt(area))), \
                f"{H} × {W}, area {area}: a {h} × {w} box"


def check_box_edge_cases(sub):
    assert all(m.all() for m in boxes(sub, 6, 9, 1.0, range(3))), "area 1: the whole image"
    assert not any(m.any() for m in boxes(sub, 6, 9, 0.0, range(3))), "area 0: nothing pasted"
    assert boxes(sub, 1, 1, 1.0, [0])[0].tolist() == [[True]]


def check_box_positions_are_uniform(sub):
    for (H, W, area, shape, draws) in [(4, 4, 0.25, (3, 3), 630), (5, 40, 0.9, (1, 3), 150)]:   # 70 and 50 a cell
        counts = torch.zeros(shape)
        for mask in boxes(sub, H, W, area, range(draws)):
            top, left, _, _ = box_of(mask)
            assert top < shape[0] and left < shape[1], "the box leaves the image"
            counts[top, left] += 1
        expected = draws/counts.numel()
        assert counts.min() > 0.6*expected and counts.max() < 1.4*expected, f"positions not uniform: {counts}"


def check_mixed_batch_contents(sub):
    xs, ys, xt, pseudo, confidence = inputs()
    confidence[1] = 0.75                                        # exactly the DACS threshold: counts as confident
    originals = [t.clone() for t in (xs, ys, xt, pseudo, confidence)]
    out = mixer(sub, area=0.4, pseudo_conf=0.75)(xs, ys, xt, pseudo, confidence, torch.full((5,), 0.8), [11, 12, 13])
    for before, after in zip(originals, (xs, ys, xt, pseudo, confidence)):
        assert torch.equal(before, after), "the mixer changed its inputs"
    for k in range(3):
        box = out.pasted[k]
        box_of(box)
        assert torch.allclose(out.images[k], torch.where(box, xs[k], xt[k])), "image: source in the box, target outside"
        assert torch.equal(out.labels[k], torch.where(box, ys[k], pseudo[k])), "label: source (255 stays) / pseudo"
        share = (confidence[k] >= 0.75).float().mean()
        assert torch.allclose(out.weights[k], torch.where(box, torch.tensor(1.0), share)), \
            f"weights: 1 in the box, outside the share of the image's confident pixels ({share:.3f})"


def check_samples_are_seeded_and_independent(sub):
    with torch.random.fork_rng():
        xs, ys, xt, pseudo, confidence = inputs(seed=1)
        m = mixer(sub, area=0.5)
        theta = torch.full((5,), 0.8)
        torch.manual_seed(1)
        out = m(xs, ys, xt, pseudo, confidence, theta, [5, 6, 7])
        torch.manual_seed(2)
        state = torch.get_rng_state()
        again = m(xs, ys, xt, pseudo, confidence, theta, [5, 6, 7])
        assert torch.equal(torch.get_rng_state(), state), "the mixer used the global random state"
    assert torch.equal(out.images, again.images) and torch.equal(out.pasted, again.pasted), "same seeds, other batch"
    one = m(xs[1:2], ys[1:2], xt[1:2], pseudo[1:2], confidence[1:2], theta, [6])
    assert torch.equal(one.pasted[0], out.pasted[1]) and torch.equal(one.images[0], out.images[1]), \
        "sample k must depend on seeds[k] (and its own inputs) only"
    positions = {box_of(mask)[:2] for mask in boxes(sub, 20, 30, 0.3, range(20))}
    assert len(positions) >= 10, "different seeds should give different boxes"


def check_photometric_augmentation(sub):
    from tauda.views import StrongView
    xs, ys, xt, pseudo, confidence = inputs(seed=2)
    theta = torch.full((5,), 0.8)
    out = mixer(sub, views=StrongView())(xs, ys, xt, pseudo, confidence, theta, [3, 4, 5])
    plain = [torch.where(out.pasted[k], xs[k], xt[k]) for k in range(3)]
    assert all((out.images[k] - plain[k]).abs().max() > 1e-3 for k in range(3)), "the mixed image is not augmented"
    assert out.images.min() >= 0 and out.images.max() <= 1, "images stay in [0, 1]"
    assert torch.equal(out.labels, torch.where(out.pasted, ys, pseudo)), "the augmentation leaves the labels alone"


CHECKS = [check_built_like_cim, check_box_geometry, check_box_edge_cases, check_mixed_batch_contents,
          check_samples_are_seeded_and_independent, check_photometric_augmentation,
          check_box_positions_are_uniform]                          # the slowest last: a wrong mixer fails early


# ---------------------------------------------------------------------------------------------------------------------
THETA = (0.95, 0.93, 0.96, 0.88, 0.94, 0.97, 0.98, 0.84, 0.78, 0.96)   # the notebook's thresholds


def coverage(H, W, area, r, c) -> float:
    "P(pixel (r, c) inside the box), counting the positions that cover it."
    h, w = round(H*math.sqrt(area)), round(W*math.sqrt(area))
    rows = sum(t <= r < t + h for t in range(H - h + 1))/(H - h + 1)
    cols = sum(t <= c < t + w for t in range(W - w + 1))/(W - w + 1)
    return rows*cols


def expected_answers() -> dict:
    inv = [1/t for t in THETA]
    z = sum(math.exp(v) for v in inv)
    probs = [math.exp(v)/z for v in inv]
    return {"coverage": [coverage(64, 128, 0.5, r, c) for r, c in [(0, 0), (32, 64), (10, 100)]],
            "pasted_share": round(64*math.sqrt(0.5))*round(128*math.sqrt(0.5))/(64*128),
            "paste_probabilities": probs, "paste_ratio": max(probs)/min(probs),
            "temperature": (max(inv) - min(inv))/math.log(2)}


TOLERANCES = {"coverage": 0.002, "pasted_share": 0.001, "paste_probabilities": 0.001, "paste_ratio": 0.005,
              "temperature": 0.005}


def check_answers(sub):
    for key, expected in expected_answers().items(): close(sub.answers.get(key), expected, TOLERANCES[key], key)


def check_training(sub, folder, stage1_run, out):
    "Two iterations of `tauda train mini-stage2 --import a3_cutmix --set method.mixing.mixer=cutmix`."
    from .common import train_with
    log = train_with(folder, "a3_cutmix", "mini-stage2", stage1_run.checkpoint, stage1_run.data, out,
                     "method.mixing.mixer=cutmix", "schedule.iterations=2")
    area = round(64*math.sqrt(0.5))*round(128*math.sqrt(0.5))/(64*128)
    assert all(entry["mix"] > 0 and abs(entry["pasted_ratio"] - area) < 1e-6 for entry in log), log
