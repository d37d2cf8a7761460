"""Dice on a 512 x 512 x 200 label pair (five organs): samcrowd vs nnU-Net's own counting.

python bench/dice_speed.py [--repeat 5]
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import median_time

from samcrowd.metrics import label_dice


def pair(shape=(512, 512, 200), seed=0):
    """Two label volumes with five blob organs, the second shifted and eroded a little."""
    rng = np.random.default_rng(seed)
    ref = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    for label, size in zip((1, 2, 3, 6, 8), (60, 40, 40, 90, 20)):
        c = rng.integers(size, np.array(shape) - size)
        sl = tuple(slice(int(x) - size // 2, int(x) + size // 2) for x in c)
        ref[sl] = label
        sl = tuple(slice(int(x) - size // 2 + 3, int(x) + size // 2 - 1) for x in c)
        pred[sl] = label
    return ref, pred


def nnunet_dice(ref, pred, labels):
    from nnunetv2.evaluation.evaluate_predictions import compute_tp_fp_fn_tn, region_or_label_to_mask

    out = {}
    for label in labels:
        tp, fp, fn, _ = compute_tp_fp_fn_tn(region_or_label_to_mask(ref, label), region_or_label_to_mask(pred, label))
        out[label] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ref, pred = pair()
    labels = [1, 2, 3, 6, 8]
    t_ours, ours = median_time(lambda: label_dice(ref, pred, labels), args.repeat)
    t_nn, theirs = median_time(lambda: nnunet_dice(ref, pred, labels), args.repeat)
    worst = max(abs(ours[label] - theirs[label]) for label in labels)
    print(f"label pair {ref.shape}, {len(labels)} labels, median of {args.repeat}")
    print(f"samcrowd.metrics.label_dice: {t_ours:.3f} s")
    print(f"nnU-Net compute_tp_fp_fn_tn: {t_nn:.3f} s  (ratio nnU-Net/samcrowd {t_nn / t_ours:.2f}x)")
    print(f"largest Dice difference: {worst:.2e}")


if __name__ == "__main__":
    main()
