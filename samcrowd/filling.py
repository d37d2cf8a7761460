"""Filling the organ slices nobody boxed by asking the study's segmenter (`fusion.completion: segmenter`).

Crowds leave slices unboxed, above all at the ends of an organ. For each organ of a case:

- **between** two slices where the stacked labels show it, every slice in the gap is asked
  with a box interpolated linearly (corner by corner) between the two slices' mask boxes,
  plus `margin_px`;
- **beyond** the first and the last such slice, the segmenter is asked slice by slice outward,
  each slice prompted with the box of the previous slice's mask plus `margin_px` (the way
  LiteMedSAM's own 3D inference for the CVPR 2024 "MedSAM on Laptop" challenge propagates a box
  from slice to slice, `CVPR24_LiteMedSAM_infer.py`, `MedSAM_infer_npz_3D`). It has no 3D box
  to tell it where the organ ends, so it stops at the first slice where the mask is under
  `min_pixels`, its score under `min_score` (SAM, LiteMedSAM: the predicted IoU), its area more
  than `max_growth` times the previous slice's (it ran into a neighbour), where an annotator
  looked and boxed no such organ, at the end of the exported slices, or after `max_slices`.

Filled pixels never overwrite a fused label; where filled masks of two organs meet, the
higher-scoring one wins. It works on the cached embeddings (no encoder pass) for the SAM
family, and on the exported PNGs for every segmenter that takes boxes. Filling only decodes, a
few hundred boxes per case: with LiteMedSAM it decodes through the box decoder converted for
OpenVINO on the CPU (no torch in the job), else on the job machine's GPU where it has one and on
the CPU otherwise, so that on a cluster the fuse jobs stay CPU jobs packed into group jobs,
while the encoder's GPU work was done once by `embed`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from samcrowd import fusion
from samcrowd.config import load_schema, validate
from samcrowd.errors import SamcrowdError
from samcrowd.export import load_manifest, read_png
from samcrowd.geometry import SliceGeometry, mask_bbox
from samcrowd.jobs import progress
from samcrowd.masks import Embeddings, compose, embedding_files, runtime, segmenter_from_record
from samcrowd.segmenters import Segmenter

log = logging.getLogger(__name__)

#: How a slice of an organ came to be filled (the fusion table's `filled` column).
BETWEEN, BEYOND = "between", "beyond"


@dataclass(frozen=True)
class FillSettings:
    """The stopping rule and box margin of filling by the segmenter (config `fusion.fill`)."""

    margin_px: int
    min_pixels: int
    min_score: float
    max_growth: float
    max_slices: int

    @classmethod
    def from_config(cls, section: dict[str, Any] | None = None) -> FillSettings:
        """From the config's `fusion.fill` section; missing keys take the schema's defaults."""
        schema = load_schema("config")["properties"]["fusion"]["properties"]["fill"]
        return cls(**validate(dict(section or {}), schema, "config: fusion.fill"))


@dataclass
class Filled:
    """What filling asked and found for one case."""

    masks: dict[int, list[tuple[int, np.ndarray, float]]] = field(default_factory=dict)  # slice -> (organ, mask, score)
    how: dict[tuple[int, int], str] = field(default_factory=dict)  # (organ, slice) -> between | beyond
    stops: list[tuple[int, str, int, str]] = field(default_factory=list)  # (organ, direction, slice, reason)
    queries: int = 0

    def add(self, organ: int, k: int, mask: np.ndarray, score: float, how: str) -> None:
        self.masks.setdefault(k, []).append((organ, mask, score))
        self.how[organ, k] = how


def padded_box(mask: np.ndarray, margin: int) -> np.ndarray | None:
    """The half-open pixel box (x0, y0, x1, y1) around a 2D mask, grown by `margin` and clipped; None if empty."""
    bbox = mask_bbox(mask)
    if bbox is None:
        return None
    (y0, y1), (x0, x1) = bbox
    height, width = mask.shape
    return np.array([max(0, x0 - margin), max(0, y0 - margin), min(width, x1 + margin), min(height, y1 + margin)])


def interpolated_box(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Corner-wise linear interpolation of two boxes at `t` in (0, 1), rounded, at least one pixel wide."""
    box = np.rint((1 - t) * np.asarray(a, dtype=float) + t * np.asarray(b, dtype=float)).astype(np.int64)
    box[2], box[3] = max(box[2], box[0] + 1), max(box[3], box[1] + 1)
    return box


def fill(
    stacked: np.ndarray,
    geometry: SliceGeometry,
    n_organs: int,
    segmenter: Segmenter,
    slice_data: Callable[[int], tuple[np.ndarray, np.ndarray | None]],
    exported: set[int],
    seen_without: dict[int, set[int]],
    settings: FillSettings,
    case: str = "",
) -> tuple[np.ndarray, Filled]:
    """The stacked labels of one case with the slices nobody boxed filled by `segmenter` (see module doc).

    `slice_data(k)`: the exported PNG of slice k and its cached embedding (None for segmenters
    without one); `exported`: the slices that have them; `seen_without[v]`: slices where an
    annotator looked and boxed no organ v (propagation stops there).
    """
    found = Filled()
    present = {
        v: [k for k in range(geometry.n_slices) if (geometry.extract(stacked, k) == v).any()]
        for v in range(1, n_organs + 1)
    }
    start = {(v, k): geometry.extract(stacked, k) == v for v, ks in present.items() for k in ks}

    def ask(k: int, boxes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        png, embedding = slice_data(k)
        found.queries += len(boxes)
        masks, scores = segmenter.segment(png, np.stack(boxes), embedding)
        return masks, np.asarray(scores, dtype=float)

    # between: one call per slice, every organ's interpolated box at once
    between: dict[int, list[tuple[int, np.ndarray]]] = {}
    for v, ks in present.items():
        for a, b in zip(ks, ks[1:]):
            box_a, box_b = padded_box(start[v, a], settings.margin_px), padded_box(start[v, b], settings.margin_px)
            for k in range(a + 1, b):
                if k in exported:
                    between.setdefault(k, []).append((v, interpolated_box(box_a, box_b, (k - a) / (b - a))))
    for k in progress(sorted(between), total=len(between), desc=f"fill between {case}".rstrip()):
        masks, scores = ask(k, [box for _, box in between[k]])
        for (v, _), mask, score in zip(between[k], masks, scores):
            if mask.any():
                found.add(v, k, mask, float(score), BETWEEN)

    # beyond: slice by slice outward from each end, prompted by the previous slice's mask
    ends = [(v, ks[0], -1) for v, ks in present.items() if ks] + [(v, ks[-1], +1) for v, ks in present.items() if ks]
    for v, end, step in progress(ends, total=len(ends), desc=f"fill beyond {case}".rstrip()):
        previous = start[v, end]
        k, n = end + step, 0
        while True:
            reason = None
            if not 0 <= k < geometry.n_slices:
                reason = "end of the volume"
            elif k not in exported:
                reason = "slice not exported"
            elif k in seen_without.get(v, set()):
                reason = "an annotator saw no such organ here"
            elif n >= settings.max_slices:
                reason = f"max_slices {settings.max_slices} reached"
            if reason is None:
                masks, scores = ask(k, [padded_box(previous, settings.margin_px)])
                mask, score = masks[0], float(scores[0])
                area, before = int(mask.sum()), int(previous.sum())
                if area < settings.min_pixels:
                    reason = f"mask of {area} px, under min_pixels {settings.min_pixels}"
                elif score < settings.min_score:
                    reason = f"score {score:.2f} under min_score {settings.min_score}"
                elif area > settings.max_growth * before:
                    reason = f"mask grew {area / before:.2f} x, over max_growth {settings.max_growth}"
            if reason is not None:
                found.stops.append((v, "down" if step < 0 else "up", k, reason))
                break
            found.add(v, k, mask, score, BEYOND)
            previous, k, n = mask, k + step, n + 1

    filled = stacked.copy()
    for k, candidates in found.masks.items():
        plane = geometry.extract(filled, k).copy()
        free = plane == 0
        proposal = compose(
            np.stack([m for _, m, _ in candidates]),
            np.array([s for _, _, s in candidates]),
            np.array([v for v, _, _ in candidates]),
        )
        plane[free] = proposal[free]
        geometry.insert(filled, k, plane)
    return filled, found


def complete_case(
    *,
    case: str,
    masks: dict[str, tuple[str | Path, str | Path]],
    manifest_path: str | Path,
    image_path: str | Path,
    slices_dir: str | Path,
    organs: list[str],
    out_stacked: str | Path,
    out_crowd: str | Path,
    out_sparse: str | Path,
    out_table: str | Path,
    method: str,
    absent: str,
    completion: str,
    fill_settings: dict[str, Any],
    segmenter_record: str | Path | None,
    embeddings: str | Path | None = None,
    decoder_ir: tuple[str, str] | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """The workflow's `fuse` job: fuse the annotators (`samcrowd.fusion.fuse_case`) and complete the
    labels; with `completion: segmenter`, by the segmenter the `segmenter` job recorded, loaded once
    (through LiteMedSAM's converted `decoder_ir` on the CPU where the workflow made one, else on the
    machine's GPU if any, else its CPU), on the batch's cached `embeddings` (SAM family) and the
    case's exported slices."""
    filler = None
    if completion == "segmenter":
        if segmenter_record is None:
            raise SamcrowdError("fusion.completion segmenter needs the segmenter's record (results/segmenter.json)")
        segmenter = segmenter_from_record(path=segmenter_record, any_device=True, decoder_ir=decoder_ir)
        segmenter.prepare(threads, encode=False)
        manifest, geometry = load_manifest(manifest_path)
        cached, decoder = None, segmenter.kind
        if segmenter.needs_embedding:
            if embeddings is None:
                raise SamcrowdError(f"segmenter.kind {segmenter.kind} fills from cached embeddings; none were given")
            # checked against the segmenter as the embed job made them (filling may decode elsewhere, in fp32)
            embedded_by = segmenter_from_record(path=segmenter_record, any_device=False)
            cached = Embeddings(*embedding_files(embeddings, case), embedded_by)
            decoder = f"{segmenter.kind} ({runtime(segmenter, 'decoder')})"
        pngs = {int(r["slice"]): Path(slices_dir) / r["png"] for r in manifest["slices"]}

        def slice_data(k: int) -> tuple[np.ndarray, np.ndarray | None]:
            return read_png(pngs[k], geometry.png_shape), None if cached is None else cached[k]

        def filler(stacked: np.ndarray, table: pd.DataFrame) -> tuple[np.ndarray, dict[tuple[int, int], str]]:
            settings = FillSettings.from_config(fill_settings)
            start = time.perf_counter()
            filled, found = fill(
                stacked,
                geometry,
                len(organs),
                segmenter,
                slice_data,
                set(pngs),
                fusion.seen_without(table, organs),
                settings,
                case,
            )
            log.info(
                "%s: filled by %s in %.1f s: %d boxes asked, %d organ slices between boxed slices, %d beyond",
                case,
                decoder,
                time.perf_counter() - start,
                found.queries,
                sum(h == BETWEEN for h in found.how.values()),
                sum(h == BEYOND for h in found.how.values()),
            )
            for v, direction, k, reason in found.stops:
                log.info("%s: %s propagation %s stopped at slice %d: %s", case, organs[v - 1], direction, k, reason)
            return filled, found.how

    return fusion.fuse_case(
        case=case,
        masks=masks,
        manifest_path=manifest_path,
        image_path=image_path,
        organs=organs,
        out_stacked=out_stacked,
        out_crowd=out_crowd,
        out_sparse=out_sparse,
        out_table=out_table,
        method=method,
        absent=absent,
        completion=completion,
        filler=filler,
    )
