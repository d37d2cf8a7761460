"""Fusing annotators into one label volume, and completing it in 3D.

Per organ and slice, the annotators who opened that slice vote with their masks: majority vote
(a pixel is kept when at least half of the voters have it, so one miss among two voters does
not erase the other's mask) or STAPLE (SimpleITK) over the voters. With `absent: background`
an annotator who opened the slice and drew no box of the organ votes "not there"; with
`absent: abstain` only the annotators who boxed the organ vote. Slices nobody opened stay
empty in the stacked volume.

Completion (`fusion.completion`) fills the slices nobody boxed. `segmenter`: the study's
segmenter is asked about them (samcrowd.filling). `distance`: for each organ, the empty slices
strictly between its first and last non-empty fused slice are filled by interpolating in-plane
signed distance maps (SimpleITK, in mm) linearly along the slice axis; nothing beyond those
slices. Neither overwrites a fused label. Where interpolated organs meet, the deeper one (more
negative distance) wins. The sparse labels keep the stacked labels on the slices annotators
voted on and mark every other slice as nnU-Net's `ignore` label.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from samcrowd import io
from samcrowd.errors import SamcrowdError
from samcrowd.export import load_manifest
from samcrowd.geometry import SliceGeometry

if TYPE_CHECKING:
    import SimpleITK

log = logging.getLogger(__name__)

#: One row per organ and slice that annotators voted on or completion filled; `filled`: how completion
#: added voxels there (no, distance, or the segmenter's between / beyond, see samcrowd.filling).
FUSION_COLUMNS = ["case", "organ", "slice", "voters", "boxed", "fused_voxels", "completed_voxels", "filled"]


@dataclass
class Annotation:
    """One annotator on one case: its label volume (1..N) and the slices it opened."""

    name: str
    volume: np.ndarray
    coverage: pd.DataFrame  # slice, organ, status (boxed/absent)

    @classmethod
    def load(cls, name: str, volume_path: str | Path, coverage_path: str | Path) -> Annotation:
        volume, _ = io.load_volume(volume_path, np.uint8)
        coverage = pd.read_csv(coverage_path, sep="\t", dtype={"organ": str, "status": str, "case": str})
        return cls(name, volume, coverage)

    def opened(self) -> set[int]:
        return set(int(k) for k in self.coverage.slice)

    def boxed(self, organ: str) -> set[int]:
        rows = self.coverage[(self.coverage.organ == organ) & (self.coverage.status == "boxed")]
        return set(int(k) for k in rows.slice)


def staple(votes: np.ndarray) -> tuple[np.ndarray, SimpleITK.STAPLEImageFilter]:
    """SimpleITK STAPLE over binary 2D masks (raters x H x W): the posterior foreground probability,
    and the filter that ran (its per-rater sensitivity and specificity)."""
    import SimpleITK as sitk

    images = [sitk.GetImageFromArray(v.astype(np.uint8)) for v in votes]
    staple_filter = sitk.STAPLEImageFilter()
    staple_filter.SetForegroundValue(1.0)
    return sitk.GetArrayFromImage(staple_filter.Execute(images)).astype(np.float64), staple_filter


def vote(votes: np.ndarray, method: str) -> np.ndarray:
    """Per-pixel support of the foreground in [0, 1] from binary votes (voters x H x W); kept where >= 0.5."""
    if len(votes) == 1 or method == "majority" or not votes.any():
        support = votes.mean(axis=0)
    elif method == "staple":
        support, _ = staple(votes)
    else:
        raise SamcrowdError(f"unknown fusion method '{method}'")
    return np.where(support >= 0.5, support, 0.0)


def fuse(
    case: str,
    annotations: list[Annotation],
    geometry: SliceGeometry,
    organs: list[str],
    method: str,
    absent: str,
) -> tuple[np.ndarray, pd.DataFrame]:
    """The stacked crowd label volume (1..N) of one case, and per organ and slice who voted."""
    stacked = np.zeros(geometry.shape, dtype=np.uint8)
    rows = []
    opened = {a.name: a.opened() for a in annotations}
    boxed = {(a.name, organ): a.boxed(organ) for a in annotations for organ in organs}
    for k in sorted(set().union(*opened.values()) if opened else set()):
        planes = {a.name: geometry.extract(a.volume, k) for a in annotations if k in opened[a.name]}
        support = np.zeros((len(organs) + 1, *geometry.png_shape))
        for v, organ in enumerate(organs, 1):
            n_boxed = sum(k in boxed[name, organ] for name in planes)
            voters = [name for name in planes if absent == "background" or k in boxed[name, organ]]
            if n_boxed:  # otherwise every voter says the organ is not on this slice
                support[v] = vote(np.stack([planes[name] == v for name in voters]), method)
            rows.append({"case": case, "organ": organ, "slice": k, "voters": len(voters), "boxed": n_boxed})
        winner = support.argmax(axis=0).astype(np.uint8)  # ties: the organ listed first
        winner[support.max(axis=0) == 0] = 0
        geometry.insert(stacked, k, winner)
    table = pd.DataFrame(rows, columns=FUSION_COLUMNS[:5])
    return stacked, table


def seen_without(table: pd.DataFrame, organs: list[str]) -> dict[int, set[int]]:
    """{organ value: slices where an annotator voted and nobody boxed the organ} from a fusion table:
    evidence that the organ is not there (none with `absent: abstain`, where only boxes vote)."""
    rows = table[(table.voters > 0) & (table.boxed == 0)]
    return {v: set(int(k) for k in rows[rows.organ == organ].slice) for v, organ in enumerate(organs, 1)}


def signed_distance(mask: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Signed Euclidean distance in mm of a 2D mask, negative inside (SimpleITK's Maurer map).

    Maurer puts 0 on the mask's border pixels and +1 pixel just outside; shifting by half a
    pixel puts the zero level between them, so that `< 0` gives back exactly the mask.
    """
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing((float(spacing[1]), float(spacing[0])))  # SimpleITK: (columns, rows)
    distance = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return sitk.GetArrayFromImage(distance).astype(np.float64) - 0.5 * min(spacing)


def complete(stacked: np.ndarray, geometry: SliceGeometry, spacing: tuple[float, float], n_organs: int) -> np.ndarray:
    """Fill each organ's empty slices between its first and last non-empty slice (see module doc)."""
    completed = stacked.copy()
    candidates: dict[int, list[tuple[int, np.ndarray]]] = {}
    for v in range(1, n_organs + 1):
        present = [k for k in range(geometry.n_slices) if (geometry.extract(stacked, k) == v).any()]
        for a, b in zip(present, present[1:]):
            if b == a + 1:
                continue
            sdf_a = signed_distance(geometry.extract(stacked, a) == v, spacing)
            sdf_b = signed_distance(geometry.extract(stacked, b) == v, spacing)
            for k in range(a + 1, b):
                t = (k - a) / (b - a)
                candidates.setdefault(k, []).append((v, (1 - t) * sdf_a + t * sdf_b))
    for k, organs in candidates.items():
        plane = geometry.extract(completed, k).copy()
        free = plane == 0
        depth = np.stack([sdf for _, sdf in organs])
        values = np.array([v for v, _ in organs], dtype=np.uint8)
        best = depth.argmin(axis=0)
        fill = free & (depth.min(axis=0) < 0)
        plane[fill] = values[best][fill]
        geometry.insert(completed, k, plane)
    return completed


def in_plane_spacing(affine: np.ndarray, geometry: SliceGeometry) -> tuple[float, float]:
    """Pixel size in mm along PNG rows and columns."""
    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    return float(zooms[geometry.row_axis]), float(zooms[geometry.col_axis])


def sparse_labels(stacked: np.ndarray, table: pd.DataFrame, geometry: SliceGeometry, n_organs: int) -> np.ndarray:
    """The stacked labels with every slice no annotator voted on set to `n_organs + 1`: nnU-Net's
    `ignore` label (it trains only on the slices that were really annotated)."""
    sparse = np.full(stacked.shape, n_organs + 1, dtype=np.uint8)
    for k in sorted(set(int(k) for k in table[table.voters > 0].slice)):
        geometry.insert(sparse, k, geometry.extract(stacked, k))
    return sparse


def fuse_case(
    *,
    case: str,
    masks: dict[str, tuple[str | Path, str | Path]],
    manifest_path: str | Path,
    image_path: str | Path,
    organs: list[str],
    out_stacked: str | Path,
    out_crowd: str | Path,
    out_sparse: str | Path,
    out_table: str | Path,
    method: str,
    absent: str,
    completion: str,
    filler: Callable[[np.ndarray, pd.DataFrame], tuple[np.ndarray, dict[tuple[int, int], str]]] | None = None,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """The workflow's `fuse` job: annotators' masks -> stacked, completed (crowd) and sparse volumes.

    `completion`: segmenter (`filler(stacked, table)` gives the filled volume and how each
    (organ value, slice) was filled, see `samcrowd.filling`), distance or none.
    """
    if not masks:
        raise SamcrowdError(f"case {case}: no annotator left to fuse")
    _, geometry = load_manifest(manifest_path)
    shape, affine = io.read_header(image_path)
    annotations = [Annotation.load(name, v, c) for name, (v, c) in sorted(masks.items())]
    for a in annotations:
        if a.volume.shape != tuple(shape):
            raise SamcrowdError(
                f"mask shape {a.volume.shape} differs from the image's {tuple(shape)}", masks[a.name][0]
            )
    stacked, table = fuse(case, annotations, geometry, organs, method, absent)
    how: dict[tuple[int, int], str] = {}
    if completion == "segmenter":
        if filler is None:
            raise SamcrowdError("fusion.completion segmenter needs the segmenter and the case's slices")
        crowd, how = filler(stacked, table)
    elif completion == "distance":
        crowd = complete(stacked, geometry, in_plane_spacing(affine, geometry), len(organs))
    else:
        crowd = stacked
    fused_voxels, completed_voxels = [], []
    for organ, k in zip(table.organ, table.slice):
        v = organs.index(organ) + 1
        fused_voxels.append(int((geometry.extract(stacked, int(k)) == v).sum()))
        completed_voxels.append(int((geometry.extract(crowd, int(k)) == v).sum()))
    table["fused_voxels"], table["completed_voxels"] = fused_voxels, completed_voxels
    filled = []
    for v, organ in enumerate(organs, 1):
        voted = set(table[table.organ == organ].slice)
        for k in range(geometry.n_slices):
            if k not in voted:
                n = int((geometry.extract(crowd, k) == v).sum())
                if n:
                    filled.append(
                        {
                            "case": case,
                            "organ": organ,
                            "slice": k,
                            "voters": 0,
                            "boxed": 0,
                            "fused_voxels": 0,
                            "completed_voxels": n,
                        }
                    )
    table = pd.concat([table, pd.DataFrame(filled, columns=FUSION_COLUMNS[:7])], ignore_index=True)
    table["filled"] = [
        how.get((organs.index(o) + 1, int(k)), completion) if c > f else "no"
        for o, k, f, c in zip(table.organ, table.slice, table.fused_voxels, table.completed_voxels)
    ]
    table = table.sort_values(
        ["organ", "slice"], key=lambda s: s.map(organs.index) if s.name == "organ" else s, kind="stable"
    ).reset_index(drop=True)
    io.save_volume(out_stacked, stacked, affine)
    io.save_volume(out_crowd, crowd, affine)
    io.save_volume(out_sparse, sparse_labels(stacked, table, geometry, len(organs)), affine)
    io.write_tsv(out_table, table[FUSION_COLUMNS])
    log.info(
        "%s: fused %d annotators (%s, absent=%s), completion %s: %s",
        case,
        len(annotations),
        method,
        absent,
        completion,
        ", ".join(
            f"{o} {int((stacked == v).sum())}->{int((crowd == v).sum())} voxels" for v, o in enumerate(organs, 1)
        ),
    )
    return stacked, crowd, table
