"""Do gold slices tell annotators apart on a real CT? Gold IoU (samcrowd.quality.gold_agreement)
of each simulated annotator profile against the expert label of TotalSegmentator's example scan
(tests/data/totalseg-example, organ values from config/example_ct.yaml), on gold slices drawn as
the campaign plan draws them (campaign.gold of the handed-out slices, from slices showing an organ).
Median and range over seeds; the profiles and quality.threshold are the embedded default's.

    python bench/gold_quality.py
    python bench/gold_quality.py --gold 0.2 --seeds 10
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from _common import REPO

from samcrowd import campaign, crowd, io, quality
from samcrowd.config import check_config, load_yaml
from samcrowd.geometry import SliceGeometry, mask_bbox

SCAN = REPO / "tests" / "data" / "totalseg-example"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gold", type=float, default=0.05, help="gold fraction (default: 0.05)")
    parser.add_argument("--seeds", type=int, default=5, help="plans and annotators drawn (default: 5)")
    args = parser.parse_args()
    defaults = check_config(load_yaml(REPO / "config.yaml"))
    organ_values = load_yaml(REPO / "config/example_ct.yaml")["organs"]
    label, affine = io.load_volume(SCAN / "example_seg.nii.gz", np.uint8)
    geometry = SliceGeometry.from_affine(affine, label.shape)
    values = list(organ_values.values())
    candidates = pd.DataFrame(
        [
            {"case": "ct", "slice": k, "stem": f"ct_{k:04d}", "organs": bool(np.isin(plane, values).any())}
            for k in range(geometry.n_slices)
            for plane in [geometry.extract(label, k)]
        ]
    )
    scores: dict[str, list[float]] = {name: [] for name in defaults["crowd"]["profiles"]}
    for seed in range(args.seeds):
        plan = campaign.plan(candidates, list(scores), k=1, gold=args.gold, seed=seed)
        gold = sorted(set(plan.slice[plan.gold == "yes"].astype(int)))
        expert = []
        for k in gold:
            for organ, value in organ_values.items():
                box = mask_bbox(geometry.extract(label, k) == value)
                if box is not None:
                    (y0, y1), (x0, x1) = box
                    expert.append(("ct", k, organ, x0, y0, x1, y1))
        expert = pd.DataFrame(expert, columns=["case", "slice", "organ", "x0", "y0", "x1", "y1"])
        manifest = {"case": "ct", "slices": [{"slice": k} for k in gold]}
        for name, section in defaults["crowd"]["profiles"].items():
            profile = crowd.Profile.from_config(section)
            drawn = crowd.draw_case(
                label, manifest, geometry, organ_values, profile, crowd.stream(seed, name, "ct"), set(gold)
            )
            rows = [("ct", name, "", int(stem[-4:]), None, None, None, None) for stem, b in drawn.items() if not b]
            rows += [
                ("ct", name, box.cls, int(stem[-4:]), box.x0, box.y0, box.x1, box.y1)
                for stem, drawn_boxes in drawn.items()
                for box in drawn_boxes
            ]
            table = pd.DataFrame(rows, columns=["case", "annotator", "organ", "slice", "x0", "y0", "x1", "y1"])
            scores[name].append(quality.gold_agreement(table, expert)[name][0])
    threshold = defaults["quality"]["threshold"]
    print(
        f"gold IoU on {SCAN.name} ({geometry.n_slices} slices, gold {args.gold:g}: {len(gold)} per plan), "
        f"{args.seeds} seeds; quality.threshold {threshold}"
    )
    for name, values_ in scores.items():
        median = float(np.median(values_))
        print(
            f"{name:12s} median {median:.3f}  range {min(values_):.3f}-{max(values_):.3f}  "
            f"{'flagged' if median < threshold else 'kept'}"
        )


if __name__ == "__main__":
    main()
