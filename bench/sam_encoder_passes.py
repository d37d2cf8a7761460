"""Encoder passes and wall time: samcrowd (one pass per slice, batched decoding) vs the
straightforward loop (set_image for every box), same inputs, the small test SAM on the CPU.

    python bench/sam_encoder_passes.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import ORGANS, median_time, phantom_with_crowd

from samcrowd import boxes, export, masks, segmenters


def naive(seg: segmenters.SamSegmenter, folder: Path, tables: list[Path]) -> list[np.ndarray]:
    """What a first script does: for every box, encode its slice and predict its mask."""
    manifest, g = export.load_manifest(folder / "c.manifest.json")
    value = {o: i + 1 for i, o in enumerate(ORGANS)}
    volumes = []
    for table_path in tables:
        table = boxes.read_table(table_path)
        volume = np.zeros(manifest["shape"], np.uint8)
        for k in sorted(set(table[table.organ != ""].slice)):
            rows = table[(table.organ != "") & (table.slice == k)]
            png = export.read_png(folder / "png" / f"{export.png_stem('c', int(k))}.png")
            found, scores = [], []
            for r in rows.itertuples():
                seg.predictor.set_image(np.repeat(png[..., None], 3, axis=2))
                m, iou, _ = seg.predictor.predict(box=np.array([r.x0, r.y0, r.x1 - 1, r.y1 - 1]), multimask_output=True)
                found.append(m[iou.argmax()])
                scores.append(iou.max())
            g.insert(volume, int(k), masks.compose(np.array(found), np.array(scores), rows.organ.map(value).to_numpy()))
        volumes.append(volume)
    return volumes


def cached(seg: segmenters.SamSegmenter, folder: Path, tables: list[Path]) -> list[np.ndarray]:
    masks.embed_case(
        segmenter=seg,
        manifest_path=folder / "c.manifest.json",
        slices_dir=folder / "png",
        out_array=folder / "e.npy",
        out_record=folder / "e.json",
    )
    embeddings = masks.Embeddings(folder / "e.npy", folder / "e.json", seg)
    return [
        masks.mask_case(
            segmenter=seg,
            annotator=p.stem,
            table_path=p,
            manifest_path=folder / "c.manifest.json",
            slices_dir=folder / "png",
            image_path=folder / "img.nii.gz",
            organs=ORGANS,
            out_volume=folder / f"{p.stem}.nii.gz",
            out_coverage=folder / f"{p.stem}.cov.tsv",
            embeddings=embeddings,
        )[0]
        for p in tables
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--crowds",
        type=int,
        default=1,
        help="decode the 4 simulated annotators' tables this many times (a larger crowd)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        folder, tables = phantom_with_crowd(Path(tmp))
        tables = tables * args.crowds
        torch.manual_seed(0)
        torch.save(segmenters.build_test_sam().state_dict(), folder / "tiny.pth")
        info = segmenters.check_checkpoint(folder / "tiny.pth", "test_tiny")
        seg = segmenters.make_segmenter(
            {"kind": "sam", "model_type": "test_tiny", "device": "cpu", "precision": "fp32", "multimask": "best"}, info
        )
        calls = {"n": 0}
        seg.model.image_encoder.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
        n_boxes = sum(int((boxes.read_table(t).organ != "").sum()) for t in tables)
        n_slices = len(export.load_manifest(folder / "c.manifest.json")[0]["slices"])

        calls["n"] = 0
        t_cached, v_cached = median_time(lambda: cached(seg, folder, tables), args.repeat)
        passes_cached = calls["n"] // args.repeat
        calls["n"] = 0
        t_naive, v_naive = median_time(lambda: naive(seg, folder, tables), args.repeat)
        passes_naive = calls["n"] // args.repeat
        agree = np.mean([np.mean(a == b) for a, b in zip(v_cached, v_naive)])

    print(
        f"inputs: 1 phantom case, {n_slices} exported slices, {len(tables)} annotators, {n_boxes} boxes; "
        f"small test SAM, CPU, median of {args.repeat}"
    )
    print(f"{'':>22} {'encoder passes':>15} {'wall time s':>12}")
    print(f"{'samcrowd (cached)':>22} {passes_cached:>15d} {t_cached:>12.3f}")
    print(f"{'set_image per box':>22} {passes_naive:>15d} {t_naive:>12.3f}")
    print(
        f"ratio naive/samcrowd: encoder passes {passes_naive / passes_cached:.1f}x, wall time {t_naive / t_cached:.1f}x"
    )
    print(f"voxel agreement of the label volumes: {agree:.5f} (samcrowd rounds features through float16)")


if __name__ == "__main__":
    main()
