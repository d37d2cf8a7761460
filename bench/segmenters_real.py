"""Which segmenter on a real CT? Slice Dice per organ and method on TotalSegmentator's example
scan (tests/data/totalseg-example, organ values from config/example_ct.yaml), with tight boxes,
tight boxes + 2 px, and the boxes of each simulated annotator profile; seconds per slice.

Every exported slice is boxed by every profile (slice_fraction set to 1: this measures how
boxes become masks, not coverage). A box drawn with the wrong class scores against that class.
Seconds per slice: encoding the slice (SAM family) plus decoding all of its tight boxes.

    python bench/segmenters_real.py
    python bench/segmenters_real.py --sam checkpoints/sam_vit_b_01ec64.pth --model-type vit_b --medsam medsam_vit_b.pth
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO, SCAN, every_slice_profiles, export_real_ct, litemedsam_on_cpu

from samcrowd import crowd, export, io, segmenters
from samcrowd.config import check_config, load_yaml
from samcrowd.metrics import dice


def make_segmenters(args, folder: Path) -> dict[str, segmenters.Segmenter]:
    """The methods, each as the workflow builds it (LiteMedSAM with its encoder and decoder converted for OpenVINO)."""
    base = check_config({})["segmenter"]
    chosen: dict[str, segmenters.Segmenter] = {
        "box": segmenters.BoxSegmenter(),
        "random_walker": segmenters.RandomWalkerSegmenter.from_config(),
    }
    chosen["litemedsam"] = litemedsam_on_cpu(folder, args.threads)
    for kind, path, model_type in (("sam", args.sam, args.model_type), ("medsam", args.medsam, "vit_b")):
        if path:
            settings = {
                **base,
                "kind": kind,
                "checkpoint": path,
                "model_type": model_type,
                "multimask": "best" if kind == "sam" else "single",
            }
            chosen[kind] = segmenters.make_segmenter(settings, segmenters.check_checkpoint(path, model_type, kind))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default="", help="a SAM checkpoint to add (never downloaded)")
    parser.add_argument("--model-type", default="vit_h", choices=["vit_h", "vit_l", "vit_b"])
    parser.add_argument("--medsam", default="", help="a MedSAM ViT-B checkpoint to add")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--every", type=int, default=1, help="use every n-th slice with organs (a quicker look)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    preset = load_yaml(REPO / "config" / "example_ct.yaml")
    organs: dict[str, int] = preset["organs"]
    profiles = every_slice_profiles("tight")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        methods = make_segmenters(args, tmp)
        manifest, geometry = export_real_ct(tmp)
        label, _ = io.load_volume(SCAN / "example_seg.nii.gz", np.uint8)
        height, width = geometry.png_shape
        # (source, slice) -> [(organ, box)]
        items: dict[tuple[str, int], list[tuple[str, tuple[int, int, int, int]]]] = {}
        for name, profile in profiles.items():
            drawn = crowd.draw_case(label, manifest, geometry, organs, profile, crowd.stream(0, name, "ct"))
            for record in manifest["slices"]:
                k = record["slice"]
                boxes = [(b.cls, (b.x0, b.y0, b.x1, b.y1)) for b in drawn.get(export.png_stem("ct", k), [])]
                if boxes:
                    items[name, k] = boxes
                    if name == "tight":
                        items["tight + 2 px", k] = [
                            (o, (max(0, x0 - 2), max(0, y0 - 2), min(width, x1 + 2), min(height, y1 + 2)))
                            for o, (x0, y0, x1, y1) in boxes
                        ]
        sources = ["tight", "tight + 2 px", *[p for p in profiles if p != "tight"]]
        scores = {(s, m, o): [] for s in sources for m in methods for o in organs}
        seconds = {m: 0.0 for m in methods}
        slices = sorted({k for (s, k) in items if s == "tight"})[:: args.every]
        for method, seg in methods.items():
            seg.prepare(args.threads)
            for k in slices:
                png = export.read_png(tmp / "png" / f"{export.png_stem('ct', k)}.png")
                plane = geometry.extract(label, k)
                start = time.perf_counter()
                embedding = seg.embed(png) if seg.needs_embedding else None
                tight = np.array([box for _, box in items["tight", k]])
                seg.segment(png, tight, embedding)
                seconds[method] += time.perf_counter() - start
                for source in sources:
                    if (source, k) not in items:
                        continue
                    organ_boxes = items[source, k]
                    masks, _ = seg.segment(png, np.array([b for _, b in organ_boxes]), embedding)
                    for (organ, _), mask in zip(organ_boxes, masks):
                        scores[source, method, organ].append(dice(mask, plane == organs[organ]))
    n_boxes = sum(len(items["tight", k]) for k in slices)
    print(
        f"TotalSegmentator example CT ({label.shape[0]} x {label.shape[1]} x {label.shape[2]} voxels, "
        f"{len(slices)} slices with organs, {n_boxes} tight boxes); slice Dice per box against the expert mask "
        "of the boxed organ (mean; 'mean' is the mean of the organ means)"
    )
    print(f"{'boxes':<14}{'method':<15}" + "".join(f"{o:>13}" for o in organs) + f"{'mean':>8}{'s/slice':>9}")
    for source in sources:
        for method in methods:
            values = [np.nanmean(scores[source, method, o]) if scores[source, method, o] else np.nan for o in organs]
            per_slice = seconds[method] / len(slices)
            print(
                f"{source:<14}{method:<15}"
                + "".join(f"{v:>13.3f}" for v in values)
                + f"{np.nanmean(values):>8.3f}{per_slice:>9.3f}"
            )
    lite = methods["litemedsam"]
    print(
        f"litemedsam image encoder: {lite.encoder_runtime()}, box decoder: {lite.decoder_runtime()}; {args.threads} threads"
    )


if __name__ == "__main__":
    main()
