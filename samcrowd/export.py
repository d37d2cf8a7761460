"""Axial slices for annotators: windowed 8-bit PNGs in radiological display, plus a manifest.

The manifest is the contract between the PNGs an annotator sees and the voxel grid: it
records the image's shape and affine, the `SliceGeometry`, the window, and for every PNG
the voxel slice it shows. Boxes drawn on a PNG come back to voxels through it alone.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from samcrowd import io
from samcrowd.config import load_schema, validate
from samcrowd.errors import SamcrowdError
from samcrowd.geometry import SliceGeometry, orientation_code

log = logging.getLogger(__name__)

STEM = re.compile(r"^(?P<case>.+)_(?P<slice>\d{4})$")
MANIFEST_VERSION = 1


def png_stem(case: str, k: int) -> str:
    """The project's own PNG stem for slice k of a case: `{case}_{k:04d}`."""
    return f"{case}_{k:04d}"


def window(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """Map HU to 8-bit grey: level - width/2 -> 0, level + width/2 -> 255, clipped."""
    lo = level - width / 2
    scaled = (np.asarray(hu, dtype=np.float64) - lo) / width
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def select_slices(
    image: np.ndarray,
    geometry: SliceGeometry,
    every: int,
    body_only: bool,
    body_hu: float = -500.0,
    min_body_fraction: float = 0.02,
) -> list[int]:
    """Slice indices to export: every n-th slice, optionally only those that show the body."""
    chosen = list(range(0, geometry.n_slices, every))
    if body_only:
        chosen = [k for k in chosen if shows_body(geometry.extract(image, k), body_hu, min_body_fraction)]
    return chosen


def shows_body(plane: np.ndarray, body_hu: float = -500.0, min_body_fraction: float = 0.02) -> bool:
    """Whether a slice (HU) shows the body: at least `min_body_fraction` of it denser than air."""
    return bool(np.mean(plane > body_hu) >= min_body_fraction)


def settings(section: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """`export_case`'s settings (level, width, every, body_only) from the config's `export` section;
    missing keys take the schema's defaults (the abdomen window, every slice)."""
    section = validate(dict(section or {}), load_schema("config")["properties"]["export"], "config: export")
    chosen = {
        "level": section["window_level"],
        "width": section["window_width"],
        "every": section["every"],
        "body_only": section["body_only"],
    }
    return {**chosen, **changes}


def export_case(
    *,
    case: str,
    image_path: str | Path,
    out_dir: str | Path,
    manifest_path: str | Path,
    level: float,
    width: float,
    every: int,
    body_only: bool,
) -> dict[str, Any]:
    """Write one PNG per selected slice into `out_dir` and the manifest; return the manifest.

    The folder is written under a temporary name and renamed when complete; the manifest is
    written last, so its presence means the slices are all there.
    """
    image, affine = io.load_volume(image_path)
    geometry = SliceGeometry.from_affine(affine, image.shape)
    slices = select_slices(image, geometry, every, body_only)
    records = []
    with io.atomic_output(out_dir, directory=True) as tmp:
        for n, k in enumerate(slices, 1):
            stem = png_stem(case, k)
            Image.fromarray(window(geometry.extract(image, k), level, width)).save(tmp / f"{stem}.png")
            records.append({"png": f"{stem}.png", "slice": k})
            if n % 25 == 0 or n == len(slices):
                log.info("%s: %d/%d slices written", case, n, len(slices))
    manifest = {
        "version": MANIFEST_VERSION,
        "case": case,
        "image": str(image_path),
        "shape": list(image.shape),
        "affine": np.asarray(affine, dtype=float).tolist(),  # exact: JSON floats round-trip
        "orientation": orientation_code(affine),
        "geometry": geometry.to_dict(),
        "png_shape": list(geometry.png_shape),
        "window": {"level": level, "width": width},
        "display": "axial, radiological: patient right on image left, anterior up",
        "slices": records,
    }
    io.write_json(manifest_path, manifest)
    return manifest


def load_manifest(path: str | Path) -> tuple[dict[str, Any], SliceGeometry]:
    """Read a manifest and its geometry."""
    manifest = io.read_json(path)
    return manifest, SliceGeometry.from_dict(manifest["geometry"])


def read_png(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """An exported slice as a 2D uint8 array, checked against the manifest's PNG shape."""
    try:
        with Image.open(path) as img:
            data = np.asarray(img.convert("L"))
    except FileNotFoundError:
        raise SamcrowdError("exported slice not found", path) from None
    if shape is not None and data.shape != tuple(shape):
        raise SamcrowdError(f"PNG shape {data.shape} differs from the manifest's {tuple(shape)}", path)
    return data
