"""How much better than the filled box is the weight-free segmenter? Dice per organ on the
phantom, with tight ground-truth boxes and with the simulated crowd's boxes.

    python bench/segmenters_phantom.py [--cases 4]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ORGANS, phantom_with_crowd

from samcrowd import boxes, export, io, segmenters
from samcrowd.geometry import mask_bbox
from samcrowd.metrics import dice
from samcrowd.phantom import LABELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    methods = {"box": segmenters.BoxSegmenter(), "random_walker": segmenters.RandomWalkerSegmenter.from_config()}
    sources = ["tight", "ann01 careful", "ann04 hasty", "ann02 unreliable"]
    scores = {(s, m, o): [] for s in sources for m in methods for o in ORGANS}
    seconds, n = 0.0, 0
    for case in range(args.cases):
        with tempfile.TemporaryDirectory() as tmp:
            folder, tables = phantom_with_crowd(Path(tmp), case_index=case, code=["LAS", "RAS", "LPS"][case % 3])
            manifest, g = export.load_manifest(folder / "c.manifest.json")
            label, _ = io.load_volume(folder / "seg.nii.gz")
            per_source = {"tight": []}
            for r in manifest["slices"]:
                plane = g.extract(label, r["slice"])
                for organ in ORGANS:
                    bb = mask_bbox(plane == LABELS[organ])
                    if bb and min(b - a for a, b in bb) >= 2:
                        per_source["tight"].append((r["slice"], organ, (bb[1][0], bb[0][0], bb[1][1], bb[0][1])))
            for name, table in zip(["ann01 careful", "ann02 unreliable", "ann03 careful", "ann04 hasty"], tables):
                if name in sources:
                    t = boxes.read_table(table)
                    per_source[name] = [
                        (int(x.slice), x.organ, (x.x0, x.y0, x.x1, x.y1)) for x in t[t.organ != ""].itertuples()
                    ]
            for source, items in per_source.items():
                for k, organ, box in items:
                    png = export.read_png(folder / "png" / f"{export.png_stem('c', k)}.png")
                    truth = g.extract(label, k) == LABELS[organ]
                    for method, seg in methods.items():
                        start = time.perf_counter()
                        mask = seg.segment(png, np.array([box]))[0][0]
                        if method == "random_walker":
                            seconds, n = seconds + time.perf_counter() - start, n + 1
                        scores[source, method, organ].append(dice(mask, truth) if truth.any() else np.nan)
    print(
        f"phantom, {args.cases} cases, slice Dice per box against the expert mask of the boxed organ "
        "(mean; a box labelled with the wrong organ scores against that organ)"
    )
    print(f"{'boxes':<18}{'method':<15}" + "".join(f"{o:>13}" for o in ORGANS) + f"{'all':>9}")
    for source in sources:
        for method in methods:
            values = [np.nanmean(scores[source, method, o]) for o in ORGANS]
            everything = np.nanmean(np.concatenate([scores[source, method, o] for o in ORGANS]))
            print(f"{source:<18}{method:<15}" + "".join(f"{v:>13.3f}" for v in values) + f"{everything:>9.3f}")
        gain = np.nanmean(
            np.concatenate([np.subtract(scores[source, "random_walker", o], scores[source, "box", o]) for o in ORGANS])
        )
        print(f"{'':<18}{'gain':<15}{gain:>+13.3f} Dice (random walker - filled box)")
    print(f"random walker: {1000 * seconds / n:.1f} ms per box on this CPU ({n} boxes)")


if __name__ == "__main__":
    main()
