"""Fewer boxes, full volumes? Volume Dice per organ on a real CT (tests/data/totalseg-example) when only
every n-th exported slice is boxed, by completion method: none (the stacked masks), distance (signed
distance interpolation between boxed slices) and segmenter (LiteMedSAM asked about the unboxed
slices: boxes interpolated between boxed slices, propagated past the ends; fusion.fill's defaults).

Boxes: the label's tight box + 2 px, and each simulated profile of the embedded default (its jitter,
scale bias, misses and wrong classes; every n-th slice instead of a random fraction). One annotator,
so the stacked labels are its masks. Seconds: what each completion adds per case (LiteMedSAM as the
workflow runs it on a CPU: embeddings cached, encoding not counted; boxes decoded through OpenVINO
on one thread, as a fuse job).

    python bench/sparse_boxes.py [--strides 1 2 3 5] [--threads 1] [--boxes tight careful hasty unreliable]
    python bench/sparse_boxes.py --demo          # also the demo's Table 1 (gt, crowd, sparse) at strides 1 and 3
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import REPO, SCAN, every_slice_profiles, export_real_ct, litemedsam_on_cpu, snakemake_command

from samcrowd import campaign, crowd, export, filling, fusion, io, masks
from samcrowd.config import load_yaml
from samcrowd.metrics import dice

METHODS = ("none", "distance", "segmenter")


def one_source(name, profile, stride, label, manifest, geometry, organs, seg, embeddings, pngs, affine):
    """{method: (crowd volume, seconds)} and the number of boxes for one box source at one stride."""
    profile = dataclasses.replace(profile, stride=stride)
    drawn = crowd.draw_case(label, manifest, geometry, organs, profile, crowd.stream(0, name, "ct"))
    height, width = geometry.png_shape
    names = list(organs)
    volume = np.zeros(geometry.shape, dtype=np.uint8)
    coverage, n_boxes = [], 0
    for stem, boxes in drawn.items():
        k = int(stem.rsplit("_", 1)[1])
        if name == "tight + 2 px":
            boxes = [
                dataclasses.replace(
                    b, x0=max(0, b.x0 - 2), y0=max(0, b.y0 - 2), x1=min(width, b.x1 + 2), y1=min(height, b.y1 + 2)
                )
                for b in boxes
            ]
        n_boxes += len(boxes)
        if boxes:
            corners = np.array([[b.x0, b.y0, b.x1, b.y1] for b in boxes])
            out, scores = seg.segment(pngs[k], corners, embeddings[k])
            plane = masks.compose(out, np.asarray(scores, float), np.array([names.index(b.cls) + 1 for b in boxes]))
            geometry.insert(volume, k, plane)
        for organ in names:
            status = "boxed" if any(b.cls == organ for b in boxes) else "absent"
            coverage.append({"slice": k, "organ": organ, "status": status})
    annotation = fusion.Annotation(name, volume, pd.DataFrame(coverage, columns=["slice", "organ", "status"]))
    stacked, table = fusion.fuse("ct", [annotation], geometry, names, "majority", "background")
    out = {"none": (stacked, 0.0)}
    start = time.perf_counter()
    out["distance"] = (
        fusion.complete(stacked, geometry, fusion.in_plane_spacing(affine, geometry), len(names)),
        time.perf_counter() - start,
    )
    start = time.perf_counter()
    filled, _ = filling.fill(
        stacked,
        geometry,
        len(names),
        seg,
        lambda k: (pngs[k], embeddings[k]),
        set(pngs),
        fusion.seen_without(table, names),
        filling.FillSettings.from_config(),
    )
    out["segmenter"] = (filled, time.perf_counter() - start)
    return out, n_boxes


def bench_scan(strides: list[int], threads: int, only: list[str] | None = None) -> pd.DataFrame:
    organs: dict[str, int] = load_yaml(REPO / "config" / "example_ct.yaml")["organs"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seg = litemedsam_on_cpu(tmp, threads)
        manifest, geometry = export_real_ct(tmp)
        label, affine = io.load_volume(SCAN / "example_seg.nii.gz", np.uint8)
        truth = {o: label == v for o, v in organs.items()}
        pngs = {r["slice"]: export.read_png(tmp / "png" / r["png"]) for r in manifest["slices"]}
        embeddings = {k: seg.embed(png) for k, png in pngs.items()}
        for name, profile in every_slice_profiles("tight + 2 px").items():
            if only and name.split()[0] not in only:
                continue
            for stride in strides:
                out, n_boxes = one_source(
                    name, profile, stride, label, manifest, geometry, organs, seg, embeddings, pngs, affine
                )
                for method, (volume, seconds) in out.items():
                    row = {"boxes from": name, "stride": stride, "boxes": n_boxes, "method": method}
                    for v, organ in enumerate(organs, 1):
                        row[organ] = dice(truth[organ], volume == v)
                    row["mean"] = float(np.mean([row[o] for o in organs]))
                    row["s/case"] = seconds
                    rows.append(row)
    return pd.DataFrame(rows)


def demo_table(stride: int, folder: Path, cores: int) -> tuple[pd.DataFrame, float]:
    """Table 1 of the embedded default as a campaign (k = 2) handing out every `stride`-th slice,
    and the run's wall time in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "sparse.yaml"
    config.write_text(f"campaign: {{plan: true, k: 2, slices: all, stride: {stride}}}\n")
    command = snakemake_command(
        folder,
        "--profile",
        str(REPO / "profiles/local"),
        "--cores",
        str(cores),
        "--configfile",
        str(REPO / "config.yaml"),
        str(config),
    )
    start = time.perf_counter()
    with open(folder / "snakemake.log", "w") as log:
        run = subprocess.run(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    if run.returncode != 0:
        raise SystemExit(f"demo at stride {stride} failed, see {folder / 'snakemake.log'}")
    return pd.read_csv(folder / "results/tables/table1.tsv", sep="\t"), time.perf_counter() - start


def cpu_name() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 2, 3, 5])
    parser.add_argument("--threads", type=int, default=1, help="the decoder's threads (a fuse job has 1)")
    parser.add_argument("--demo", action="store_true", help="also run the demo at strides 1 and 3 (about 25 minutes)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--boxes", nargs="+", help="only these box sources (tight, careful, hasty, unreliable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"CPU: {cpu_name()}; {args.threads} threads")
    table = bench_scan(args.strides, args.threads, args.boxes)
    print(
        "TotalSegmentator example CT (tests/data/totalseg-example, 30 slices at 3 mm): volume Dice per organ, "
        "every n-th exported slice boxed, one annotator"
    )
    print(table.to_markdown(index=False, floatfmt=".3f") if hasattr(table, "to_markdown") else table.to_string())
    tight = table[table["boxes from"] == "tight + 2 px"].set_index(["stride", "method"])["mean"]
    for stride in args.strides:
        if stride != 1 and 1 in args.strides:
            print(
                f"tight + 2 px, stride {stride}: segmenter {tight[stride, 'segmenter']:.3f} vs distance "
                f"{tight[stride, 'distance']:.3f} ({tight[stride, 'segmenter'] - tight[stride, 'distance']:+.3f}); "
                f"segmenter / every slice boxed = {tight[stride, 'segmenter'] / tight[1, 'segmenter']:.3f}"
            )
    if args.demo:
        with tempfile.TemporaryDirectory() as tmp:
            for stride in (1, 3):
                t1, wall = demo_table(stride, Path(tmp) / f"stride{stride}", args.cores)
                keep = ["organ"] + [c for c in t1.columns if c.endswith("_mean") or c.startswith("test_p_")]
                print(
                    f"\nthe demo as a campaign, k = 2, every {campaign.ordinal(stride)} slice handed out (seed 0), "
                    f"{wall / 60:.1f} min: Table 1"
                )
                print(t1[keep].to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
