"""LiteMedSAM on a CPU: throughput of the OpenVINO fast path against plain torch fp32 (the
reference), side by side in one run, for the image encoder and for the box decoder, and how well
their masks agree.

Slices: every exported slice of TotalSegmentator's example CT (tests/data/totalseg-example).
Encoder: both runtimes get `--threads`; each round encodes all slices with torch, then with
OpenVINO; slices per second are medians over rounds. Agreement: masks decoded from either
runtime's (float16-stored) embedding for the tight box (+ 2 px) of every organ on every slice,
Dice per box. Decoder: the same boxes on the same embeddings, one thread each (as masks and fuse
jobs decode), torch then OpenVINO per round; boxes per second are medians over rounds, and the
mask pixels and predicted IoUs that differ.

    python bench/litemedsam_cpu.py [--threads 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO, SCAN, export_real_ct

from samcrowd import export, io, segmenters
from samcrowd.config import check_config, load_yaml
from samcrowd.geometry import mask_bbox
from samcrowd.metrics import dice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--every", type=int, default=1, help="use every n-th slice (a quicker look)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    organs = load_yaml(REPO / "config" / "example_ct.yaml")["organs"]
    settings = {**check_config({})["segmenter"], "kind": "litemedsam", "device": "cpu"}
    checkpoint = segmenters.check_checkpoint("", "", "litemedsam")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reference = segmenters.make_segmenter({**settings, "runtime": "torch"}, checkpoint)
        reference.prepare(args.threads)
        start = time.perf_counter()
        reference.export_encoder(tmp / "encoder.xml", tmp / "encoder.bin")
        convert_s = time.perf_counter() - start
        reference.export_decoder(tmp / "decoder.xml", tmp / "decoder.bin")
        fast = segmenters.make_segmenter(
            {**settings, "runtime": "openvino"}, checkpoint, (str(tmp / "encoder.xml"), str(tmp / "encoder.bin"))
        )
        fast.prepare(args.threads, decode=False)  # encodes only
        manifest, geometry = export_real_ct(tmp)
        records = manifest["slices"][:: args.every]
        pngs = [export.read_png(tmp / "png" / r["png"]) for r in records]
        rates: dict[str, list[float]] = {"torch": [], "openvino": []}
        embeddings: dict[str, list[np.ndarray]] = {}
        for _ in range(args.rounds):
            for name, seg in (("torch", reference), ("openvino", fast)):
                seg.embed(pngs[0])  # warm-up
                start = time.perf_counter()
                embeddings[name] = [seg.embed(png) for png in pngs]
                rates[name].append(len(pngs) / (time.perf_counter() - start))
        label, _ = io.load_volume(SCAN / "example_seg.nii.gz", np.uint8)
        height, width = geometry.png_shape
        agreement, decoded = [], []  # decoded: (png, boxes, embedding) of every slice with organs
        for record, png, e_torch, e_fast in zip(records, pngs, embeddings["torch"], embeddings["openvino"]):
            plane = geometry.extract(label, record["slice"])
            boxes = []
            for value in organs.values():
                bb = mask_bbox(plane == value)
                if bb and min(b - a for a, b in bb) >= 2:
                    (y0, y1), (x0, x1) = bb
                    boxes.append([max(0, x0 - 2), max(0, y0 - 2), min(width, x1 + 2), min(height, y1 + 2)])
            if not boxes:
                continue
            a, _ = reference.segment(png, np.array(boxes), e_torch)
            b, _ = reference.segment(png, np.array(boxes), e_fast)
            for m, n in zip(a, b):
                agreement.append(1.0 if not (m.any() or n.any()) else dice(m, n))  # both empty: they agree
            decoded.append((png, np.array(boxes), e_fast))
        reference.prepare(1)  # one thread, as masks and fuse jobs decode
        decoder = segmenters.make_segmenter(
            {**settings, "runtime": "openvino"}, checkpoint, None, (str(tmp / "decoder.xml"), str(tmp / "decoder.bin"))
        )
        decoder.prepare(1, encode=False)
        n_boxes = sum(len(b) for _, b, _ in decoded)
        box_rates: dict[str, list[float]] = {"torch": [], "openvino": []}
        outputs: dict[str, list] = {}
        for _ in range(args.rounds):
            for name, seg in (("torch", reference), ("openvino", decoder)):
                seg.segment(*decoded[0])  # warm-up
                start = time.perf_counter()
                outputs[name] = [seg.segment(*one) for one in decoded]
                box_rates[name].append(n_boxes / (time.perf_counter() - start))
        flipped = sum(int((a[0] != b[0]).sum()) for a, b in zip(outputs["torch"], outputs["openvino"]))
        pixels = sum(a[0].size for a in outputs["torch"])
        score_gap = max(float(np.abs(a[1] - b[1]).max()) for a, b in zip(outputs["torch"], outputs["openvino"]))
    torch_rate, fast_rate = statistics.median(rates["torch"]), statistics.median(rates["openvino"])
    agreement = np.array(agreement)
    print(
        f"LiteMedSAM image encoder, {len(pngs)} slices of the example CT ({height} x {width}, padded to 256 x 256), "
        f"{args.threads} threads, {args.rounds} rounds; OpenVINO conversion took {convert_s:.1f} s (once per workflow)"
    )
    print(f"{'runtime':<22}{'slices/s':>10}{'s/slice':>10}   per round (slices/s)")
    for name, rate in (("torch fp32 (reference)", torch_rate), ("openvino fp32", fast_rate)):
        per_round = rates["torch" if name.startswith("torch") else "openvino"]
        print(f"{name:<22}{rate:>10.2f}{1 / rate:>10.3f}   " + ", ".join(f"{r:.2f}" for r in per_round))
    print(
        f"throughput ratio openvino / torch: {fast_rate / torch_rate:.2f} (median of rounds; per round "
        + ", ".join(f"{f / t:.2f}" for f, t in zip(rates["openvino"], rates["torch"]))
        + ")"
    )
    print(
        f"mask agreement, Dice per box ({len(agreement)} boxes): min {agreement.min():.4f}, "
        f"mean {agreement.mean():.4f}, boxes >= 0.99: {(agreement >= 0.99).mean():.1%}"
    )
    torch_boxes, fast_boxes = statistics.median(box_rates["torch"]), statistics.median(box_rates["openvino"])
    print(f"\nLiteMedSAM box decoder, {n_boxes} boxes on {len(decoded)} slices, 1 thread, {args.rounds} rounds")
    print(f"{'runtime':<22}{'boxes/s':>10}{'s/box':>10}   per round (boxes/s)")
    for name, key, rate in (
        ("torch fp32 (reference)", "torch", torch_boxes),
        ("openvino fp32", "openvino", fast_boxes),
    ):
        print(f"{name:<22}{rate:>10.2f}{1 / rate:>10.3f}   " + ", ".join(f"{r:.2f}" for r in box_rates[key]))
    print(
        f"decoder throughput ratio openvino / torch: {fast_boxes / torch_boxes:.2f} (median of rounds; per round "
        + ", ".join(f"{f / t:.2f}" for f, t in zip(box_rates["openvino"], box_rates["torch"]))
        + ")"
    )
    print(f"decoder agreement: {flipped} of {pixels} mask pixels differ; predicted IoU within {score_gap:.1e}")


if __name__ == "__main__":
    main()
