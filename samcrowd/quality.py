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

With a campaign plan that has gold slices (samcrowd.campaign), a fourth measure compares the
annotator with the expert: gold IoU, each organ's box on a gold slice against the box around
the expert label (an organ boxed by only one of the two scores 0).

`reliability` is the gold IoU where the annotator answered gold slices (`basis` gold), else the
mean of the available box IoU, mask Dice and STAPLE sensitivity (`basis` peers); annotators
are ranked by it, and flagged below a threshold.
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
    "gold_iou",
    "gold_slices",
    "reliability",
    "basis",
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


def expert_boxes(
    cells: pd.DataFrame, *, manifests: dict[str, str], labels: dict[str, str], organ_values: dict[str, int]
) -> pd.DataFrame:
    """The box around each organ of the expert label on the given (case, slice) cells, in exported
    PNG pixels (columns case, slice, organ, x0, y0, x1, y1; half-open)."""
    from samcrowd import io
    from samcrowd.export import load_manifest

    rows = []
    for case, group in cells.groupby("case", sort=False):
        _, geometry = load_manifest(manifests[case])
        label, _ = io.load_volume(labels[case], np.uint8)
        for k in sorted(set(group.slice.astype(int))):
            plane = geometry.extract(label, k)
            for organ, value in organ_values.items():
                box = mask_bbox(plane == value)
                if box is not None:
                    (y0, y1), (x0, x1) = box
                    rows.append({"case": case, "slice": k, "organ": organ, "x0": x0, "y0": y0, "x1": x1, "y1": y1})
    return pd.DataFrame(rows, columns=["case", "slice", "organ", "x0", "y0", "x1", "y1"])


def gold_agreement(boxes: pd.DataFrame, expert: pd.DataFrame) -> dict[str, tuple[float, int]]:
    """Mean IoU of each annotator's boxes with the expert's on the gold slices it returned (the
    slices of `expert`); an organ boxed by only one of the two counts 0. -> {annotator: (IoU, slices)}."""
    if expert.empty or boxes.empty:
        return {}
    truth = {(r.case, int(r.slice), r.organ): (r.x0, r.y0, r.x1, r.y1) for r in expert.itertuples()}
    gold_cells = {(c, s) for c, s, _ in truth}
    out = {}
    for name, own in boxes.groupby("annotator"):
        own = own[[(c, int(s)) in gold_cells for c, s in zip(own.case, own.slice)]]
        if own.empty:
            continue
        drawn = (
            own[own.organ != ""]
            .groupby(["case", "slice", "organ"])
            .agg(x0=("x0", "min"), y0=("y0", "min"), x1=("x1", "max"), y1=("y1", "max"))
        )
        mine = {(c, int(s), o): tuple(float(v) for v in r) for (c, s, o), r in drawn.iterrows()}
        cells = {(c, int(s)) for c, s in zip(own.case, own.slice)}
        scores = []
        for case, k in cells:
            organs = {o for (c, s, o) in truth if (c, s) == (case, k)} | {
                o for (c, s, o) in mine if (c, s) == (case, k)
            }
            for organ in organs:
                a, b = mine.get((case, k, organ)), truth.get((case, k, organ))
                scores.append(iou(a, tuple(float(v) for v in b)) if a is not None and b is not None else 0.0)
        out[name] = (float(np.mean(scores)) if scores else np.nan, len(cells))
    return out


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
    expert: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The reliability table: one row per annotator, most reliable first. `expert`: the expert's
    boxes on the campaign's gold slices (`expert_boxes`), if it has any."""
    names = sorted(set(boxes.annotator) | {a.name for _, anns in cases.values() for a in anns})
    box_iou = box_consensus_iou(boxes)
    dice = loo_mask_dice(cases, organs, method, absent)
    staple = staple_agreement(cases, len(organs))
    gold = gold_agreement(boxes, expert) if expert is not None else {}
    rows = []
    for name in names:
        own = boxes[boxes.annotator == name]
        b, d, s = box_iou.get(name, (np.nan, 0)), dice.get(name, (np.nan, 0)), staple.get(name, (np.nan, np.nan, 0))
        g = gold.get(name, (np.nan, 0))
        measures = [x for x in (b[0], d[0], s[0]) if not np.isnan(x)]
        basis = "gold" if g[1] else "peers"
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
                "gold_iou": g[0],
                "gold_slices": g[1],
                "reliability": g[0] if g[1] else (float(np.mean(measures)) if measures else np.nan),
                "basis": basis,
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
            "annotator %s: reliability %.3f from %s (gold IoU %.3f on %d slices, box IoU %.3f, LOO Dice %.3f, "
            "STAPLE sensitivity %.3f), rank %d%s",
            row.annotator,
            row.reliability,
            row.basis,
            row.gold_iou,
            row.gold_slices,
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
    organ_values: dict[str, int],
    assignment: str | None = None,
    labels: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The workflow's `quality` job: inputs listed per (case, annotator) pair, in the same order;
    with a campaign plan (`assignment`), the expert `labels` of its gold slices' cases."""
    from samcrowd import io
    from samcrowd.boxes import read_table
    from samcrowd.export import load_manifest

    boxes = pd.concat([read_table(t) for t in tables], ignore_index=True) if tables else pd.DataFrame()
    cases: dict[str, tuple[SliceGeometry, list[Annotation]]] = {}
    for (case, annotator), volume, cov in zip(pairs, volumes, coverage):
        if case not in cases:
            cases[case] = (load_manifest(manifests[case])[1], [])
        cases[case][1].append(Annotation.load(annotator, volume, cov))
    expert = None
    if assignment is not None:
        from samcrowd.campaign import gold_cells, read_assignment

        expert = expert_boxes(
            gold_cells(read_assignment(assignment)), manifests=manifests, labels=labels or {}, organ_values=organ_values
        )
    table = annotator_quality(boxes, cases, organs, method=method, absent=absent, threshold=threshold, expert=expert)
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
