"""Case sheets: reading and checking `cases.tsv`, building one for BTCV, checking image/label pairs.

A case sheet has the columns case, image, label (may be empty), split (train or test).
Every problem is reported as ``<sheet>:<line>: <what>`` before any job runs.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from samcrowd import io
from samcrowd.config import load_schema, validate
from samcrowd.errors import SamcrowdError
from samcrowd.geometry import orientation_code

COLUMNS = ["case", "image", "label", "split"]


def read_sheet(path: str | Path, project_dir: str | Path = ".", allow_outside: bool = False) -> pd.DataFrame:
    """Read and check a case sheet; return it with paths resolved (relative to the sheet's folder).

    Refuses: unknown or missing columns, a name or split the schema rejects, a case defined
    twice, an image or label that does not exist, and, unless `allow_outside`, a path that
    resolves outside `project_dir`.
    """
    path = Path(path)
    schema = load_schema("cases")
    project = Path(project_dir).resolve()
    try:
        handle = open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise SamcrowdError("case sheet not found", path) from None
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    with handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        if not reader.fieldnames:
            raise SamcrowdError("empty case sheet (expected a header: case, image, label, split)", path, 1)
        header = [h.strip() for h in reader.fieldnames]
        unknown = [h for h in header if h not in COLUMNS]
        if unknown:
            raise SamcrowdError(f"unknown column '{unknown[0]}' (columns: {', '.join(COLUMNS)})", path, 1)
        missing = [c for c in schema["required"] if c not in header]
        if missing:
            raise SamcrowdError(f"missing column '{missing[0]}' (columns: {', '.join(COLUMNS)})", path, 1)
        for raw in reader:
            line = reader.line_num
            if raw.get(None):
                raise SamcrowdError("more fields than columns (a tab inside a value?)", path, line)
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            if not any(row.values()):
                continue  # blank line
            if not row.get("label"):
                row.pop("label", None)
            validate(row, schema, "case sheet", str(path), line)
            case = row["case"]
            if case in seen:
                raise SamcrowdError(f"case '{case}' is defined twice (first on line {seen[case]})", path, line)
            seen[case] = line
            for column in ("image", "label"):
                if column in row:
                    row[column] = _resolve(row[column], column, path, line, project, allow_outside)
            rows.append({"case": case, "image": row["image"], "label": row.get("label", ""), "split": row["split"]})
    if not rows:
        raise SamcrowdError("the case sheet lists no cases", path)
    return pd.DataFrame(rows, columns=COLUMNS)


def _resolve(value: str, column: str, sheet: Path, line: int, project: Path, allow_outside: bool) -> str:
    """Resolve a sheet path against the sheet's folder; check it exists and, if asked, stays inside."""
    target = Path(value) if os.path.isabs(value) else sheet.parent / value
    resolved = target.resolve()
    if not allow_outside and not resolved.is_relative_to(project):
        raise SamcrowdError(
            f"{column} '{value}' lies outside the project ({project}); "
            "set data.allow_outside_project: true to allow it",
            sheet,
            line,
        )
    if not resolved.is_file():
        raise SamcrowdError(f"{column} '{value}' does not exist", sheet, line)
    if resolved.is_relative_to(project):
        return str(resolved.relative_to(project))
    return str(resolved)


def check_pair(image: str | Path, label: str | Path | None) -> dict[str, Any]:
    """Check an image (and its label) from the headers: readable, sane, same grid. Return a summary."""
    shape, affine = io.read_header(image)
    summary: dict[str, Any] = {
        "image": str(image),
        "shape": list(shape),
        "spacing": [round(float(s), 6) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0))],
        "orientation": orientation_code(affine),
        "affine": affine.tolist(),
        "label": None,
    }
    if label:
        label_shape, label_affine = io.read_header(label)
        if label_shape != shape:
            raise SamcrowdError(f"label shape {label_shape} differs from image shape {shape} ({image})", label)
        if not same_grid(affine, label_affine):
            raise SamcrowdError(
                f"label affine differs from the image's ({image}): "
                f"{np.round(label_affine, 4).tolist()} vs {np.round(affine, 4).tolist()}",
                label,
            )
        summary["label"] = str(label)
    return summary


def same_grid(a: np.ndarray, b: np.ndarray, mm: float = 1e-3) -> bool:
    """True when two affines place every voxel within `mm` of the same point (corners checked)."""
    return bool(np.allclose(a[:3, :3], b[:3, :3], atol=mm / 100) and np.allclose(a[:3, 3], b[:3, 3], atol=mm))


def btcv_sheet(root: str | Path, dataset: dict[str, Any]) -> pd.DataFrame:
    """Build a case sheet from a BTCV folder using a preset's `dataset` section.

    Files are found anywhere below `root` by their BTCV names (e.g. img0001.nii.gz and
    label0001.nii.gz, as in RawData/Training/img and .../label); the split is the preset's.
    """
    root = Path(root)
    if not root.is_dir():
        raise SamcrowdError("not a folder", root)
    by_name: dict[str, list[Path]] = {}
    for p in sorted(root.rglob("*.nii*")):
        by_name.setdefault(p.name, []).append(p.resolve())
    rows = []
    for split in ("train", "test"):
        for number in dataset["split"][split]:
            found = {}
            for kind in ("image", "label"):
                name = dataset[kind].format(id=int(number))
                hits = by_name.get(name, [])
                if not hits:
                    raise SamcrowdError(f"{name} (case {number}, {split}) not found below this folder", root)
                if len(hits) > 1:
                    raise SamcrowdError(f"{name} found {len(hits)} times: {', '.join(map(str, hits))}", root)
                found[kind] = str(hits[0])
            rows.append({"case": dataset["case"].format(id=int(number)), **found, "split": split})
    return pd.DataFrame(rows, columns=COLUMNS)
