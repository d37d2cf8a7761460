"""Annotator quality without an expert: how well each annotator agrees with the others.

Three measures, each in [0, 1], computed only where the annotator and at least one other
annotator looked at the same slice:

- box IoU with the consensus: each of the annotator's boxes against the median box of the
  other annotators who boxed that organ on that slice;
- mask Dice with the leave-one-out fusion: the annotator's masks against the fusion of all
  other annotators, pooled over the slices both opened (misses and extra boxes count);
- STAPLE sensitivity and specificity (SimpleITK) per slice opened by two or more annotators,
  on the region around their masks; specificity is reported but, with background dominating,
  says little.

`reliability` is the mean of the available box IoU, mask Dice and STAPLE sensitivity;
annotators are ranked by it, and flagged below a threshold.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np
import pandas as pd

from samcrowd.fusion import Annotation, fuse, staple
from samcrowd.geometry import SliceGeometry, mask_bbox
from samcrowd.metrics import dice_from_counts

log = logging.getLogger(__name__)

COLUMNS = [
    "annotator",
    "boxes",
    "slices",
    "box_iou",
    "box_pairs",
    "mask_dice_loo",
    "loo_slices",
    "staple_sensitivity",
    "staple_specificity",
    "staple_slices",
    "reliability",
    "rank",
    "flagged",
]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two half-open boxes (x0, y0, x1, y1)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_consensus_iou(boxes: pd.DataFrame) -> dict[str, tuple[float, int]]:
    """Mean IoU of each annotator's box with the median box of the others (same case, slice, organ)."""
    drawn = boxes[boxes.organ != ""]
    if drawn.empty:
        return {}
    per = drawn.groupby(["case", "slice", "organ", "annotator"]).agg(
        x0=("x0", "min"), y0=("y0", "min"), x1=("x1", "max"), y1=("y1", "max")
    )
    scores: dict[str, list[float]] = defaultdict(list)
    for _, group in per.groupby(level=["case", "slice", "organ"]):
        if len(group) < 2:
            continue
        names = group.index.get_level_values("annotator")
        corners = group[["x0", "y0", "x1", "y1"]].to_numpy(dtype=float)
        for i, name in enumerate(names):
            others = np.delete(corners, i, axis=0)
            scores[name].append(iou(tuple(corners[i]), tuple(np.median(others, axis=0))))
    return {name: (float(np.mean(v)), len(v)) for name, v in scores.items()}


def loo_mask_dice(
    cases: dict[str, tuple[SliceGeometry, list[Annotation]]], organs: list[str], method: str, absent: str
) -> dict[str, tuple[float, int]]:
    """Pooled Dice of each annotator against the fusion of the others, on slices both opened."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # tp, n_annotator, n_loo, slices
    for case, (geometry, case_annotations) in cases.items():
        for a in case_annotations:
            others = [b for b in case_annotations if b is not a]
            if not others:
                continue
            loo, _ = fuse(case, others, geometry, organs, method, absent)
            shared = a.opened() & set().union(*(b.opened() for b in others))
            c = counts[a.name]
            for k in shared:
                mine, theirs = geometry.extract(a.volume, k), geometry.extract(loo, k)
                for v in range(1, len(organs) + 1):
                    m, t = mine == v, theirs == v
                    c[0] += int(np.count_nonzero(m & t))
                    c[1] += int(np.count_nonzero(m))
                    c[2] += int(np.count_nonzero(t))
                c[3] += 1
    return {name: (dice_from_counts(c[0], c[1], c[2]), c[3]) for name, c in counts.items()}


def staple_agreement(
    cases: dict[str, tuple[SliceGeometry, list[Annotation]]], n_organs: int, margin: int = 10
) -> dict[str, tuple[float, float, int]]:
    """Mean STAPLE sensitivity and specificity of each annotator on slices opened by two or more."""
    values: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for geometry, case_annotations in cases.values():
        opened = {a.name: a.opened() for a in case_annotations}
        for k in sorted(set().union(*opened.values()) if opened else set()):
            raters = [a for a in case_annotations if k in opened[a.name]]
            if len(raters) < 2:
                continue
            planes = [geometry.extract(a.volume, k) for a in raters]
            for v in range(1, n_organs + 1):
                votes = np.stack([p == v for p in planes])
                box = mask_bbox(votes.any(axis=0))
                if box is None:
                    continue
                (r0, r1), (c0, c1) = box
                r0, c0 = max(0, r0 - margin), max(0, c0 - margin)
                crop = votes[:, r0 : r1 + margin, c0 : c1 + margin]
                _, staple_filter = staple(crop)
                for a, sens, spec in zip(raters, staple_filter.GetSensitivity(), staple_filter.GetSpecificity()):
                    values[a.name].append((sens, spec))
    return {
        name: (float(np.mean([s for s, _ in v])), float(np.mean([p for _, p in v])), len(v))
        for name, v in values.items()
    }


def annotator_quality(
    boxes: pd.DataFrame,
    cases: dict[str, tuple[SliceGeometry, list[Annotation]]],
    organs: list[str],
    *,
    method: str,
    absent: str,
    threshold: float,
) -> pd.DataFrame:
    """The reliability table: one row per annotator, most reliable first."""
    names = sorted(set(boxes.annotator) | {a.name for _, anns in cases.values() for a in anns})
    box_iou = box_consensus_iou(boxes)
    dice = loo_mask_dice(cases, organs, method, absent)
    staple = staple_agreement(cases, len(organs))
    rows = []
    for name in names:
        own = boxes[boxes.annotator == name]
        b, d, s = box_iou.get(name, (np.nan, 0)), dice.get(name, (np.nan, 0)), staple.get(name, (np.nan, np.nan, 0))
        measures = [x for x in (b[0], d[0], s[0]) if not np.isnan(x)]
        rows.append(
            {
                "annotator": name,
                "boxes": int((own.organ != "").sum()),
                "slices": int(own[["case", "slice"]].drop_duplicates().shape[0]),
                "box_iou": b[0],
                "box_pairs": b[1],
                "mask_dice_loo": d[0],
                "loo_slices": d[1],
                "staple_sensitivity": s[0],
                "staple_specificity": s[1],
                "staple_slices": s[2],
                "reliability": float(np.mean(measures)) if measures else np.nan,
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS[:-2])
    table = table.sort_values(
        ["reliability", "annotator"], ascending=[False, True], na_position="last", kind="stable"
    ).reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    table["flagged"] = table.reliability.isna() | (table.reliability < threshold)
    for row in table.itertuples():
        log.info(
            "annotator %s: reliability %.3f (box IoU %.3f, LOO Dice %.3f, STAPLE sensitivity %.3f), rank %d%s",
            row.annotator,
            row.reliability,
            row.box_iou,
            row.mask_dice_loo,
            row.staple_sensitivity,
            row.rank,
            ", flagged" if row.flagged else "",
        )
    return table


def write_quality(
    *,
    pairs: list[tuple[str, str]],
    tables: list[str],
    volumes: list[str],
    coverage: list[str],
    manifests: dict[str, str],
    organs: list[str],
    out: str,
    method: str,
    absent: str,
    threshold: float,
) -> pd.DataFrame:
    """The workflow's `quality` job: inputs listed per (case, annotator) pair, in the same order."""
    from samcrowd import io
    from samcrowd.boxes import read_table
    from samcrowd.export import load_manifest

    boxes = pd.concat([read_table(t) for t in tables], ignore_index=True) if tables else pd.DataFrame()
    cases: dict[str, tuple[SliceGeometry, list[Annotation]]] = {}
    for (case, annotator), volume, cov in zip(pairs, volumes, coverage):
        if case not in cases:
            cases[case] = (load_manifest(manifests[case])[1], [])
        cases[case][1].append(Annotation.load(annotator, volume, cov))
    table = annotator_quality(boxes, cases, organs, method=method, absent=absent, threshold=threshold)
    io.write_tsv(out, table)
    return table


def kept_annotators(*, quality_table: str, annotators: list[str]) -> list[str]:
    """The annotators the quality table does not flag (in the given order)."""
    from samcrowd.errors import SamcrowdError

    table = pd.read_csv(quality_table, sep="\t", dtype={"annotator": str})
    flagged = set(table.annotator[table.flagged.astype(str).str.lower() == "true"])
    kept = [a for a in annotators if a not in flagged]
    if not kept:
        raise SamcrowdError(
            "every annotator is flagged; lower quality.threshold or set quality.drop_flagged: false", quality_table
        )
    log.info("dropping flagged annotators: %s", ", ".join(sorted(flagged)) or "none")
    return kept
