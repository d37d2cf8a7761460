"""What do 3D completion and dropping flagged annotators gain? Volume Dice of the crowd labels
on the embedded default's training cases, over several seeds (phantom and crowd).

    python bench/fusion_gain.py [--seeds 5] [--cases 8]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import pandas as pd
from _common import ORGANS

from samcrowd import boxes, crowd, evaluation, export, fusion, io, masks, quality, segmenters
from samcrowd.config import check_config
from samcrowd.openlabeling import PRESETS
from samcrowd.phantom import LABELS, PhantomSettings, make_case


def one_seed(seed: int, n_cases: int, tmp: Path) -> pd.DataFrame:
    config = check_config({})
    settings = PhantomSettings.from_config(seed=seed)
    seg = segmenters.RandomWalkerSegmenter.from_config(config["segmenter"]["random_walker"])
    organs = {o: LABELS[o] for o in ORGANS}
    tables, per_case = [], {}
    for i in range(n_cases):
        case = f"c{i}"
        code = config["phantom"]["orientations"][i % len(config["phantom"]["orientations"])]
        image, label, affine = make_case(settings, i, code)
        io.save_volume(tmp / f"{case}.nii.gz", image, affine)
        io.save_volume(tmp / f"{case}_seg.nii.gz", label, affine)
        manifest = export.export_case(
            case=case,
            image_path=tmp / f"{case}.nii.gz",
            out_dir=tmp / case,
            manifest_path=tmp / f"{case}.json",
            **export.settings(),
        )
        frame = boxes.frame_from_manifest(manifest, PRESETS["project"])
        per_case[case] = {}
        for name, profile in config["crowd"]["annotators"].items():
            stem = tmp / f"{case}-{name}"
            crowd.simulate_annotator(
                name=name,
                profile=crowd.Profile.from_config(config["crowd"]["profiles"][profile]),
                cases=[(tmp / f"{case}_seg.nii.gz", tmp / f"{case}.json")],
                organ_values=organs,
                out_dir=stem,
                seed=seed,
                formats=("yolo", "voc"),
            )
            table = boxes.annotator_table(stem, name, PRESETS["project"], ORGANS, {case: frame}.get)
            io.write_tsv(f"{stem}.tsv", table)
            tables.append(table)
            masks.mask_case(
                segmenter=seg,
                annotator=name,
                table_path=f"{stem}.tsv",
                manifest_path=tmp / f"{case}.json",
                slices_dir=tmp / case,
                image_path=tmp / f"{case}.nii.gz",
                organs=ORGANS,
                out_volume=f"{stem}.nii.gz",
                out_coverage=f"{stem}.cov.tsv",
            )
            per_case[case][name] = (f"{stem}.nii.gz", f"{stem}.cov.tsv")
    geometry = {c: export.load_manifest(tmp / f"{c}.json")[1] for c in per_case}
    q = quality.annotator_quality(
        pd.concat(tables),
        {c: (geometry[c], [fusion.Annotation.load(a, *p) for a, p in m.items()]) for c, m in per_case.items()},
        ORGANS,
        method="majority",
        absent=config["fusion"]["absent"],
        threshold=config["quality"]["threshold"],
    )
    flagged = set(q.annotator[q.flagged])
    rows = []
    for case, m in per_case.items():
        for variant, kept in (
            ("all annotators", m),
            ("flagged dropped", {a: p for a, p in m.items() if a not in flagged}),
        ):
            fusion.fuse_case(
                case=case,
                masks=kept,
                manifest_path=tmp / f"{case}.json",
                image_path=tmp / f"{case}.nii.gz",
                organs=ORGANS,
                out_stacked=tmp / "s.nii.gz",
                out_crowd=tmp / "c.nii.gz",
                out_table=tmp / "f.tsv",
                method="majority",
                absent="background",
                completion=True,
            )
            _, volumes, _ = evaluation.evaluate_case(
                case,
                tmp / f"{case}_seg.nii.gz",
                organs,
                geometry[case],
                kept,
                tmp / "s.nii.gz",
                tmp / "c.nii.gz",
                tmp / "f.tsv",
                other_labels="error",
            )
            for r in volumes[volumes.source.isin(["stacked", "crowd"])].itertuples():
                rows.append(
                    {
                        "seed": seed,
                        "case": case,
                        "variant": variant,
                        "labels": r.source,
                        "organ": r.organ,
                        "dice": r.dice,
                    }
                )
    logging.getLogger("bench").info("seed %d: flagged %s", seed, sorted(flagged))
    return pd.DataFrame(rows), sorted(flagged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cases", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    frames, flagged = [], {}
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            frame, flagged[seed] = one_seed(seed, args.cases, Path(tmp))
            frames.append(frame)
    d = pd.concat(frames)
    print(
        f"embedded default crowd (4 annotators, ann02 unreliable), random walker, {args.cases} cases, "
        f"seeds 0..{args.seeds - 1}; volume Dice, mean over seeds and cases"
    )
    print("flagged per seed:", {s: f or "none" for s, f in flagged.items()})
    table = d.groupby(["variant", "labels", "organ"]).dice.mean().unstack("organ")[ORGANS]
    table["mean"] = table.mean(axis=1)
    print(table.round(3).to_string())
    per_seed = d.groupby(["seed", "variant", "labels"]).dice.mean().unstack(["variant", "labels"])
    completion = per_seed[("all annotators", "crowd")] - per_seed[("all annotators", "stacked")]
    dropping = per_seed[("flagged dropped", "crowd")] - per_seed[("all annotators", "crowd")]
    print(
        f"gain of completion (all annotators): {completion.mean():+.3f} Dice "
        f"(per seed {', '.join(f'{x:+.3f}' for x in completion)})"
    )
    print(
        f"gain of dropping flagged annotators (completed labels): {dropping.mean():+.3f} Dice "
        f"(per seed {', '.join(f'{x:+.3f}' for x in dropping)})"
    )


if __name__ == "__main__":
    main()
