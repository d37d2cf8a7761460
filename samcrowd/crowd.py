"""A simulated crowd: OpenLabeling folders drawn from expert labels with a noise model per annotator.

Each simulated annotator opens a random subset of the exported slices (`slice_fraction`), of
every `stride`-th one when a stride is set (a sparse campaign: the first exported slice of each
case, then every n-th), and on each one boxes the study organs it shows, with corner jitter (Gaussian, pixels), a
scale bias (boxes drawn larger or smaller about their centre), misses (per organ), and
sometimes the wrong class. Output is exactly what OpenLabeling writes, so the importer
cannot tell simulated from real annotators. Deterministic: each (seed, annotator, case)
has its own random stream, so adding an annotator or a case changes nobody else's files.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from samcrowd import io
from samcrowd.export import load_manifest, png_stem
from samcrowd.geometry import mask_bbox
from samcrowd.openlabeling import MARKER, Box, write_class_list, write_voc, write_yolo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Profile:
    """How one simulated annotator draws (see the config schema's crowd.profiles)."""

    jitter_px: float = 1.0
    scale_bias: float = 1.0
    miss_rate: float = 0.0
    miss_rate_by_organ: dict[str, float] = field(default_factory=dict)
    slice_fraction: float = 1.0
    wrong_class_rate: float = 0.0
    stride: int = 1

    @classmethod
    def from_config(cls, section: dict) -> Profile:
        return cls(**section)

    def miss(self, organ: str) -> float:
        return self.miss_rate_by_organ.get(organ, self.miss_rate)


def stream(seed: int, annotator: str, case: str) -> np.random.Generator:
    """The random stream of one annotator on one case (stable across runs and machines)."""
    return np.random.default_rng([seed, zlib.crc32(annotator.encode()), zlib.crc32(case.encode())])


def draw_case(
    label: np.ndarray,
    manifest: dict,
    geometry,
    organ_values: dict[str, int],
    profile: Profile,
    rng: np.random.Generator,
    slices: set[int] | None = None,
    marker: str | None = None,
) -> dict[str, list[Box]]:
    """The boxes one annotator draws on one case: {png stem: boxes} for every slice opened.

    `slices`: the slices to open (a campaign plan's), instead of a random `slice_fraction`;
    `marker`: the class boxed on a slice without any organ (samcrowd.openlabeling.MARKER).
    """
    names = list(organ_values)
    height, width = geometry.png_shape
    drawn: dict[str, list[Box]] = {}
    for i, record in enumerate(manifest["slices"]):
        opened = rng.random() < profile.slice_fraction  # drawn either way: a plan changes no stream
        opened = opened and i % profile.stride == 0  # a sparse annotator (stride 1: as before)
        k = record["slice"]
        if not (opened if slices is None else k in slices):
            continue
        plane = geometry.extract(label, k)
        boxes = []
        for organ, value in organ_values.items():
            box = mask_bbox(plane == value)
            if box is None or rng.random() < profile.miss(organ):
                continue
            (y0, y1), (x0, x1) = box
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue  # a sliver nobody would box
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            hw, hh = (x1 - x0) / 2 * profile.scale_bias, (y1 - y0) / 2 * profile.scale_bias
            jitter = rng.normal(0.0, profile.jitter_px, 4) if profile.jitter_px > 0 else np.zeros(4)
            nx0 = max(0, int(round(cx - hw + jitter[0])))
            ny0 = max(0, int(round(cy - hh + jitter[1])))
            nx1 = min(width, int(round(cx + hw + jitter[2])))
            ny1 = min(height, int(round(cy + hh + jitter[3])))
            if nx1 - nx0 < 2 or ny1 - ny0 < 2:
                continue
            cls = organ
            if len(names) > 1 and rng.random() < profile.wrong_class_rate:
                cls = names[(names.index(organ) + 1 + int(rng.integers(len(names) - 1))) % len(names)]
            boxes.append(Box(cls, nx0, ny0, nx1, ny1, 0))
        if marker is not None and not boxes:
            boxes.append(Box(marker, 0, 0, min(8, width), min(8, height), 0))
        drawn[png_stem(manifest["case"], k)] = boxes
    return drawn


def simulate_annotator(
    *,
    name: str,
    profile: Profile,
    cases: list[tuple[str, str]],
    organ_values: dict[str, int],
    out_dir: str | Path,
    seed: int,
    formats: tuple[str, ...],
    assigned: set[tuple[str, int]] | None = None,
) -> dict[str, list[Box]]:
    """Write one annotator's OpenLabeling folder for `cases` [(label path, manifest path)].

    `assigned`: with a campaign plan, the (case, slice) it was given; it opens exactly those
    and marks slices without an organ with the MARKER class, as the instruction sheet asks.
    Returns every stem's boxes (half-open pixel corners on the exported PNG), as drawn.
    """
    all_drawn: dict[str, list[Box]] = {}
    classes = list(organ_values) if assigned is None else [*organ_values, MARKER]
    with io.atomic_output(out_dir, directory=True) as tmp:
        write_class_list(tmp / "class_list.txt", classes)
        if "yolo" in formats:
            (tmp / "YOLO_darknet").mkdir()
        if "voc" in formats:
            (tmp / "PASCAL_VOC").mkdir()
        for n, (label_path, manifest_path) in enumerate(cases, 1):
            manifest, geometry = load_manifest(manifest_path)
            label, _ = io.load_volume(label_path, np.uint8)
            case = manifest["case"]
            slices = None if assigned is None else {k for c, k in assigned if c == case}
            marker = None if assigned is None else MARKER
            drawn = draw_case(
                label, manifest, geometry, organ_values, profile, stream(seed, name, case), slices, marker
            )
            height, width = geometry.png_shape
            for stem, boxes in drawn.items():
                if "yolo" in formats:
                    write_yolo(tmp / "YOLO_darknet" / f"{stem}.txt", boxes, classes, width, height)
                if "voc" in formats:
                    write_voc(tmp / "PASCAL_VOC" / f"{stem}.xml", stem, boxes, width, height)
            all_drawn.update(drawn)
            log.info(
                "%s: case %s (%d/%d): %d slices opened, %d boxes",
                name,
                manifest["case"],
                n,
                len(cases),
                len(drawn),
                sum(map(len, drawn.values())),
            )
    return all_drawn
