"""How close are crowd labels to expert labels: slice Dice, volume Dice, and Table 1 (left).

Label sources: every annotator's own mask volume, `stacked` (their fusion) and `crowd` (the
stacked labels completed in 3D). Slice Dice is computed on the slices a source annotated for an
organ (an annotator: the slices it boxed the organ on; stacked: the slices at least one
annotator boxed it on); volume Dice over the whole volume. A source that never boxed an
organ on a case is excluded from that organ's figures, with the reason written down.
Dice follows nnU-Net: NaN when reference and prediction are both empty, omitted from means.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from samcrowd import io
from samcrowd.fusion import Annotation
from samcrowd.geometry import SliceGeometry
from samcrowd.metrics import dice_from_counts, label_counts
from samcrowd.stats import mean_sd

log = logging.getLogger(__name__)

SLICE_COLUMNS = ["case", "organ", "source", "slice", "dice", "n_ref", "n_pred"]
VOLUME_COLUMNS = ["case", "organ", "source", "dice", "n_ref", "n_pred"]
EXCLUSION_COLUMNS = ["case", "organ", "source", "reason"]
#: The label sources besides the annotators: expert labels, the stacked fusion of the annotators' masks,
#: the crowd labels (stacked, completed in 3D), and the sparse labels (stacked, the slices nobody voted on
#: marked for nnU-Net to ignore). Annotators cannot take these names.
LABEL_SOURCES = ("gt", "crowd", "stacked", "sparse")


def dense_labels(label: np.ndarray, organ_values: dict[str, int]) -> np.ndarray:
    """Expert labels (e.g. BTCV values) -> 1..N in config order; other structures -> 0."""
    lut = np.zeros(256, dtype=np.uint8)
    for i, value in enumerate(organ_values.values(), 1):
        lut[value] = i
    return lut[label]


def read_expert_label(path: str | Path, organ_values: dict[str, int], other_labels: str = "error") -> np.ndarray:
    """An expert label volume as 1..N; values that are no organ stop (`error`) or become 0 (`background`)."""
    from samcrowd.errors import SamcrowdError

    label, _ = io.load_volume(path, np.uint8)
    unknown = sorted(set(np.unique(label).tolist()) - {0} - set(organ_values.values()))
    if unknown and other_labels == "error":
        raise SamcrowdError(
            f"label value {unknown[0]} is not in the organ list ({organ_values}); set "
            "data.other_labels: background to map other structures to background",
            path,
        )
    if unknown:
        log.info("%s: values %s are no study organ, mapped to background", path, unknown)
    return dense_labels(label, organ_values)


def evaluate_case(
    case: str,
    label_path: str | Path,
    organ_values: dict[str, int],
    geometry: SliceGeometry,
    annotators: dict[str, tuple[str | Path, str | Path]],
    stacked_path: str | Path,
    crowd_path: str | Path | None,
    fusion_table_path: str | Path,
    other_labels: str,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Slice Dice, volume Dice and exclusions of one case (see module doc)."""
    names = list(organ_values)
    values = list(range(1, len(names) + 1))
    reference = read_expert_label(label_path, organ_values, other_labels)
    fusion_table = pd.read_csv(fusion_table_path, sep="\t", dtype={"organ": str, "case": str})
    sources: dict[str, tuple[np.ndarray, dict[str, set[int]]]] = {}
    for name, (volume_path, coverage_path) in sorted(annotators.items()):
        a = Annotation.load(name, volume_path, coverage_path)
        sources[name] = (a.volume, {organ: a.boxed(organ) for organ in names})
    fused_slices = {
        organ: set(int(k) for k in fusion_table[(fusion_table.organ == organ) & (fusion_table.boxed > 0)].slice)
        for organ in names
    }
    sources["stacked"] = (io.load_volume(stacked_path, np.uint8)[0], fused_slices)
    if crowd_path is not None:
        sources["crowd"] = (io.load_volume(crowd_path, np.uint8)[0], fused_slices)
    slice_rows, volume_rows, exclusions = [], [], []
    for source, (volume, annotated) in sources.items():
        counts = label_counts(reference, volume, values)
        for organ, v in zip(names, values):
            if not annotated[organ]:
                reason = (
                    f"no annotator drew a box of {organ} on this case"
                    if source in ("stacked", "crowd")
                    else f"annotator {source} drew no box of {organ} on this case"
                )
                exclusions.append({"case": case, "organ": organ, "source": source, "reason": reason})
                continue
            tp, n_ref, n_pred = counts[v]
            volume_rows.append(
                {
                    "case": case,
                    "organ": organ,
                    "source": source,
                    "dice": dice_from_counts(tp, n_ref, n_pred),
                    "n_ref": n_ref,
                    "n_pred": n_pred,
                }
            )
            if source == "crowd":
                continue  # completion adds slices; on the annotated ones it equals the fusion
            for k in sorted(annotated[organ]):
                r, p = geometry.extract(reference, k) == v, geometry.extract(volume, k) == v
                tp_k, nr, npred = int(np.count_nonzero(r & p)), int(np.count_nonzero(r)), int(np.count_nonzero(p))
                slice_rows.append(
                    {
                        "case": case,
                        "organ": organ,
                        "source": source,
                        "slice": k,
                        "dice": dice_from_counts(tp_k, nr, npred),
                        "n_ref": nr,
                        "n_pred": npred,
                    }
                )
    return (
        pd.DataFrame(slice_rows, columns=SLICE_COLUMNS),
        pd.DataFrame(volume_rows, columns=VOLUME_COLUMNS),
        pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS),
    )


def annotation_table(slices: pd.DataFrame, volumes: pd.DataFrame, organs: list[str]) -> pd.DataFrame:
    """Table 1 (left): per organ and overall, mean and SD across cases of the crowd labels' slice
    Dice (stacked; per case the mean over annotated slices) and volume Dice (stacked and crowd).

    The overall row averages each case's organs first, then takes mean and SD across cases.
    SD is the sample SD (ddof 1). NaN Dice (both empty) is omitted.
    """
    per_case = {
        "slice_dice": slices[slices.source == "stacked"].groupby(["case", "organ"]).dice.mean(),
        "volume_dice_stacked": volumes[volumes.source == "stacked"].set_index(["case", "organ"]).dice,
        "volume_dice_crowd": volumes[volumes.source == "crowd"].set_index(["case", "organ"]).dice,
    }
    rows = []
    for organ in [*organs, "mean"]:
        row: dict[str, object] = {"organ": organ}
        for measure, series in per_case.items():
            if organ == "mean":
                values = series.groupby(level="case").mean() if len(series) else series
            else:
                values = (
                    series.xs(organ, level="organ")
                    if organ in series.index.get_level_values("organ")
                    else pd.Series(dtype=float)
                )
            mean, sd, n = mean_sd(values)
            row[f"{measure}_mean"], row[f"{measure}_sd"], row[f"{measure}_n"] = mean, sd, n
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    """Table 1 (left) as Markdown: mean ± SD (n cases)."""

    def cell(row, measure):
        mean, sd, n = row[f"{measure}_mean"], row[f"{measure}_sd"], row[f"{measure}_n"]
        if np.isnan(mean):
            return "–"
        return f"{mean:.2f} ± {sd:.2f} (n={n})" if not np.isnan(sd) else f"{mean:.2f} (n={n})"

    lines = ["| organ | slice Dice | volume Dice, stacked | volume Dice, crowd |", "|---|---|---|---|"]
    for _, row in table.iterrows():
        lines.append(
            f"| {row.organ} | {cell(row, 'slice_dice')} | {cell(row, 'volume_dice_stacked')} | "
            f"{cell(row, 'volume_dice_crowd')} |"
        )
    return "\n".join(lines) + "\n"


def evaluate_case_files(
    *,
    case: str,
    label: str,
    organ_values: dict[str, int],
    manifest: str,
    masks: dict[str, tuple[str, str]],
    stacked: str,
    crowd: str | None,
    fusion_table: str,
    out_slices: str,
    out_volumes: str,
    out_exclusions: str,
    other_labels: str,
) -> None:
    """The workflow's `evaluate_case` job."""
    from samcrowd.export import load_manifest

    slices, volumes, exclusions = evaluate_case(
        case, label, organ_values, load_manifest(manifest)[1], masks, stacked, crowd, fusion_table, other_labels
    )
    io.write_tsv(out_slices, slices)
    io.write_tsv(out_volumes, volumes)
    io.write_tsv(out_exclusions, exclusions)
    for row in volumes[volumes.source.isin(["stacked", "crowd"])].itertuples():
        log.info("%s %s %s: volume Dice %.4f", case, row.organ, row.source, row.dice)


def collect(
    *,
    slice_paths: list[str],
    volume_paths: list[str],
    exclusion_paths: list[str],
    organs: list[str],
    no_label: list[str],
    out_slices: str,
    out_volumes: str,
    out_exclusions: str,
    out_table: str,
    out_markdown: str,
) -> pd.DataFrame:
    """The workflow's `evaluate` job: concatenate per-case tables, write Table 1 (left)."""

    def read(paths, columns):
        frames = [pd.read_csv(p, sep="\t", dtype={"case": str, "organ": str, "source": str}) for p in paths]
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)

    slices, volumes = read(slice_paths, SLICE_COLUMNS), read(volume_paths, VOLUME_COLUMNS)
    exclusions = read(exclusion_paths, EXCLUSION_COLUMNS)
    extra = [
        {"case": c, "organ": o, "source": "all", "reason": "no expert label for this case"}
        for c in no_label
        for o in organs
    ]
    exclusions = pd.concat([exclusions, pd.DataFrame(extra, columns=EXCLUSION_COLUMNS)], ignore_index=True)
    table = annotation_table(slices, volumes, organs)
    io.write_tsv(out_slices, slices)
    io.write_tsv(out_volumes, volumes)
    io.write_tsv(out_exclusions, exclusions)
    io.write_tsv(out_table, table)
    io.write_text(out_markdown, to_markdown(table))
    log.info("Table 1 (left):\n%s", to_markdown(table))
    return table
