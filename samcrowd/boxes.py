"""Box tables: an annotator's OpenLabeling files as validated rows with pixel and voxel boxes.

One row per box: case, annotator, organ, slice, x0, y0, x1, y1 (half-open pixel corners on
samcrowd's exported PNG), i0, i1, j0, j1, k0, k1 (half-open voxel ranges along the volume's
axes 0, 1, 2), and the file and line it came from. A file with no box of a study organ adds
one row with an empty organ: the slice was seen and nothing was there, which differs from a
slice nobody opened.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from samcrowd.errors import SamcrowdError
from samcrowd.geometry import SliceGeometry
from samcrowd.identifiers import IDENTIFIER
from samcrowd.io import read_json, write_tsv
from samcrowd.openlabeling import MARKER, PRESETS, Naming, normalise_class, read_class_list, read_slice, scan_folder

log = logging.getLogger(__name__)

COLUMNS = [
    "case",
    "annotator",
    "organ",
    "slice",
    "x0",
    "y0",
    "x1",
    "y1",
    "i0",
    "i1",
    "j0",
    "j1",
    "k0",
    "k1",
    "file",
    "line",
]
ANNOTATOR_NAME = re.compile(IDENTIFIER)
INT_COLUMNS = ["slice", "x0", "y0", "x1", "y1", "i0", "i1", "j0", "j1", "k0", "k1", "line"]


@dataclass(frozen=True)
class CaseFrame:
    """How one case's campaign PNGs relate to voxels and to samcrowd's exported PNGs."""

    campaign: SliceGeometry  # the annotator's PNG -> voxels
    output: SliceGeometry  # voxels -> samcrowd's exported PNG (the table's pixel corners)
    exported: frozenset[int] | None = None  # slices that have a PNG, when the campaign is samcrowd's own


def frame_from_manifest(manifest: dict, naming: Naming) -> CaseFrame:
    """A case's frame in the workflow: the export manifest, and the naming's axes if it has its own."""
    output = SliceGeometry.from_dict(manifest["geometry"])
    if naming.axes is None:
        return CaseFrame(output, output, frozenset(r["slice"] for r in manifest["slices"]))
    return CaseFrame(SliceGeometry(shape=output.shape, **naming.axes), output)


def class_map(classes: list[str] | tuple[str, ...], organs: list[str], overrides: dict[str, str]) -> dict[str, str]:
    """Class name -> organ for the classes that are study organs (by normalised name or override)."""
    wanted = {normalise_class(k): v for k, v in overrides.items()}
    out = {}
    for name in classes:
        organ = wanted.get(normalise_class(name), normalise_class(name))
        if organ in organs:
            out[name] = organ
    return out


def annotator_table(
    folder: str | Path,
    annotator: str,
    naming: Naming,
    organs: list[str],
    frame_of,
    class_overrides: dict[str, str] | None = None,
    only_case: str | None = None,
    known_cases: set[str] | None = None,
) -> pd.DataFrame:
    """Parse and check every file of an annotator's folder; return the box table.

    `frame_of(case)` gives the CaseFrame of an annotated case, or None. With `only_case`,
    files of other cases are checked for their names only. A stem naming a case outside
    `known_cases` (the case sheet) is an error; one naming a known case that has no frame
    (not in an annotated split) is skipped and counted in the log.
    """
    found = scan_folder(folder)
    if found.class_list is not None:
        classes = read_class_list(found.class_list)
    elif naming.classes is not None:
        classes = list(naming.classes)
    else:
        raise SamcrowdError(
            "no class_list.txt in this annotation folder (and the naming preset has no class list)", folder
        )
    to_organ = class_map(classes, organs, class_overrides or {})
    # a package's class list has the marker: empty files are OpenLabeling's, not the annotator's
    empty_is_unseen = MARKER in {normalise_class(c) for c in classes}
    unseen = 0
    stems = sorted(set(found.yolo) | set(found.voc))
    by_slice: dict[tuple[str, int], str] = {}
    rows: list[dict] = []
    ignored: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for stem in stems:
        path = found.voc.get(stem) or found.yolo[stem]
        parsed = naming.parse_stem(stem)
        if parsed is None:
            raise SamcrowdError(
                f"unknown stem '{stem}': does not match the '{naming.name}' naming ({naming.pattern})", path
            )
        case, k = parsed
        if (case, k) in by_slice:
            raise SamcrowdError(
                f"duplicate stem: '{stem}' and '{by_slice[case, k]}' both name slice {k} of case '{case}'", path
            )
        by_slice[case, k] = stem
        if known_cases is not None and case not in known_cases:
            raise SamcrowdError(f"unknown stem '{stem}': case '{case}' is not a case of this study", path)
        if only_case is not None and case != only_case:
            continue
        frame = frame_of(case)
        if frame is None:
            if known_cases is None:
                raise SamcrowdError(f"unknown stem '{stem}': case '{case}' is not a case of this study", path)
            skipped[case] += 1
            continue
        if frame.exported is not None and k not in frame.exported:
            raise SamcrowdError(f"unknown stem '{stem}': slice {k} of case '{case}' was not exported", path)
        if not 0 <= k < frame.campaign.n_slices:
            raise SamcrowdError(f"slice {k} is outside case '{case}' ({frame.campaign.n_slices} slices)", path)
        height, width = frame.campaign.png_shape
        sf = read_slice(stem, found, classes, lambda w=width, h=height: (w, h), naming.rounding)
        for warning in sf.warnings:
            log.warning("%s", warning)
        if empty_is_unseen and not sf.boxes:
            unseen += 1
            continue
        kept = 0
        for box in sf.boxes:
            organ = to_organ.get(box.cls)
            if organ is None:
                if normalise_class(box.cls) != MARKER:
                    ignored[box.cls] += 1
                continue
            voxels = frame.campaign.box_to_voxels((box.x0, box.y0, box.x1, box.y1), k)
            try:
                png, out_k = frame.output.voxels_to_box(voxels)
            except ValueError:
                raise SamcrowdError(
                    f"slice {k} of the campaign is not an axial slice of case '{case}' as exported", sf.path, box.line
                ) from None
            (i0, i1), (j0, j1), (k0, k1) = voxels
            rows.append(
                {
                    "case": case,
                    "annotator": annotator,
                    "organ": organ,
                    "slice": out_k,
                    "x0": png[0],
                    "y0": png[1],
                    "x1": png[2],
                    "y1": png[3],
                    "i0": i0,
                    "i1": i1,
                    "j0": j0,
                    "j1": j1,
                    "k0": k0,
                    "k1": k1,
                    "file": _relative(sf.path, folder),
                    "line": box.line,
                }
            )
            kept += 1
        if kept == 0:  # no organ box (maybe the marker): seen, nothing there
            out_k = _output_slice(frame, k)
            rows.append(
                {"case": case, "annotator": annotator, "organ": "", "slice": out_k, "file": _relative(sf.path, folder)}
            )
    if unseen:
        log.info("%s: %d empty file(s) not done yet (the class list has '%s')", folder, unseen, MARKER)
    for case, n in sorted(skipped.items()):
        log.info("%s: skipped %d file(s) of case '%s' (not in an annotated split)", folder, n, case)
    for cls, n in sorted(ignored.items()):
        log.info("%s: ignored %d box(es) of class '%s' (not a study organ)", folder, n, cls)
    return to_frame(rows, organs)


def campaign_frames(folder: str | Path, naming: Naming) -> dict[str, CaseFrame]:
    """Frames for a campaign read without volumes (the CLI): the naming's own axes and PNG size,
    each case as deep as its highest slice."""
    if naming.axes is None or naming.png_shape is None:
        raise SamcrowdError(f"the '{naming.name}' naming needs the export manifests to place boxes in voxels", folder)
    found = scan_folder(folder)
    depth: dict[str, int] = {}
    for stem in set(found.yolo) | set(found.voc):
        parsed = naming.parse_stem(stem)
        if parsed:
            depth[parsed[0]] = max(depth.get(parsed[0], 0), parsed[1] + 1)
    frames = {}
    for case, n in depth.items():
        shape = [0, 0, 0]
        shape[naming.axes["slice_axis"]] = n
        shape[naming.axes["row_axis"]], shape[naming.axes["col_axis"]] = naming.png_shape
        geometry = SliceGeometry(shape=tuple(shape), **naming.axes)
        frames[case] = CaseFrame(geometry, geometry)
    return frames


def _output_slice(frame: CaseFrame, k: int) -> int:
    """The exported slice index that shows the campaign's slice k."""
    if frame.campaign.slice_axis != frame.output.slice_axis:
        raise SamcrowdError("campaign slices are not axial slices of the exported volume")
    return k


def _relative(path: Path, folder: str | Path) -> str:
    return Path(path).relative_to(Path(folder)).as_posix()


def to_frame(rows: list[dict], organs: list[str]) -> pd.DataFrame:
    """Rows -> a table in a fixed column order and sort order (case, slice, organ in config order)."""
    table = pd.DataFrame(rows, columns=COLUMNS)
    for column in INT_COLUMNS:
        table[column] = table[column].astype("Int64")
    table["organ"] = table["organ"].fillna("").astype(str)
    rank = {organ: i for i, organ in enumerate(organs)}
    order = table.assign(_rank=table.organ.map(lambda o: rank.get(o, -1)))
    order = order.sort_values(["case", "slice", "_rank", "x0", "y0", "file", "line"], kind="stable")
    return order.drop(columns="_rank").reset_index(drop=True)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a box table written by `annotator_table` (empty organ = seen, nothing drawn)."""
    table = pd.read_csv(
        path,
        sep="\t",
        dtype={"case": str, "annotator": str, "organ": str, "file": str},
        keep_default_na=False,
        na_values={c: [""] for c in INT_COLUMNS},
    )
    for column in INT_COLUMNS:
        table[column] = table[column].astype("Int64")
    return table


def summary(table: pd.DataFrame, organs: list[str]) -> str:
    """'1840 boxes on 651 slices (531 seen empty); spleen 253, ...' for logs and the CLI."""
    boxes = table[table.organ != ""]
    n_box_slices = boxes[["case", "annotator", "slice"]].drop_duplicates().shape[0]
    n_empty = (table.organ == "").sum()
    per_organ = ", ".join(f"{o} {int((boxes.organ == o).sum())}" for o in organs)
    return f"{len(boxes)} boxes on {n_box_slices} slices ({n_empty} seen empty); {per_organ}"


def write_case_table(
    *,
    folder: str | Path,
    annotator: str,
    case: str,
    manifest_path: str | Path,
    out: str | Path,
    naming: str,
    organs: list[str],
    class_overrides: dict[str, str] | None = None,
    known_cases: set[str] | None = None,
    assigned: set[tuple[str, int]] | None = None,
    unassigned: str = "refuse",
) -> pd.DataFrame:
    """One annotator's box table on one case, placed through the case's manifest (in the `masks` job).

    `assigned`: with a campaign plan, the (case, slice) the annotator was given; files for other
    slices are refused or flagged (`unassigned`, samcrowd.campaign.check_assigned).
    """
    preset = PRESETS[naming]
    manifest = read_json(manifest_path)
    frame = frame_from_manifest(manifest, preset)
    table = annotator_table(
        folder,
        annotator,
        preset,
        organs,
        lambda c: frame if c == case else None,
        class_overrides,
        only_case=case,
        known_cases=known_cases,
    )
    if assigned is not None:
        from samcrowd.campaign import check_assigned

        table = check_assigned(table, assigned, unassigned, folder, annotator)
    write_tsv(out, table)
    log.info("%s / %s: %s", case, annotator, summary(table, organs))
    return table


def discover_annotators(folder: str | Path) -> list[str]:
    """The annotator subfolders of a campaign folder, sorted; names must be safe file names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SamcrowdError("annotation folder not found (annotations.folder)", folder)
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in names:
        if not ANNOTATOR_NAME.fullmatch(name):
            raise SamcrowdError(
                f"annotator folder name '{name}' is not allowed (letters, digits, '_' and '-', "
                "starting with a letter or digit)",
                folder / name,
            )
    if not names:
        raise SamcrowdError("no annotator subfolders", folder)
    return names
