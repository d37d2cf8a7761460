"""A synthetic abdomen: CT-like volumes in Hounsfield units with expert labels, from a seed.

The demo must run offline on a CPU, so samcrowd ships its own patients. Each case is an
axial stack through the upper abdomen: air, body outline with subcutaneous fat and an
abdominal-wall muscle ring, spine, paraspinal muscles, bowel with gas, the inferior vena
cava, and the five organs of the study. Organ shapes are ellipsoids deformed by a smooth
random field; liver and spleen intensities overlap as they do in portal-venous CT, the
aorta is contrast-bright. Partial-volume blur is stronger across the thick slices, then
correlated noise is added. Labels follow the BTCV values (spleen 1, right kidney 2, left
kidney 3, liver 6, aorta 8).

The anatomy is built in a canonical RAS+ grid (index 0 grows toward patient right, 1
toward anterior, 2 toward superior) and then stored in the requested orientation, with
the affine that keeps every voxel at its place in space.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from samcrowd import io
from samcrowd.config import load_schema, validate
from samcrowd.geometry import reorient

log = logging.getLogger(__name__)

#: BTCV label values of the organs the phantom draws.
LABELS = {"spleen": 1, "right_kidney": 2, "left_kidney": 3, "liver": 6, "aorta": 8}


@dataclass(frozen=True)
class PhantomSettings:
    """The config's `phantom` section (defaults: schemas/config.schema.yaml)."""

    seed: int
    n_train: int
    n_test: int
    shape: tuple[int, int, int]  # right-left, anterior-posterior, superior-inferior
    spacing: tuple[float, float, float]
    orientations: tuple[str, ...]
    noise_hu: float
    prefix: str

    @classmethod
    def from_config(cls, section: dict | None = None, **overrides) -> PhantomSettings:
        """Settings from a config section; missing keys take the schema's defaults."""
        merged = {**(section or {}), **overrides}
        merged = {k: list(v) if isinstance(v, tuple) else v for k, v in merged.items()}
        validate(merged, load_schema("config")["properties"]["phantom"], "config: phantom")
        return cls(
            seed=int(merged["seed"]),
            n_train=int(merged["n_train"]),
            n_test=int(merged["n_test"]),
            shape=tuple(int(v) for v in merged["shape"]),
            spacing=tuple(float(v) for v in merged["spacing"]),
            orientations=tuple(merged["orientations"]),
            noise_hu=float(merged["noise_hu"]),
            prefix=str(merged["prefix"]),
        )

    @property
    def n_cases(self) -> int:
        return self.n_train + self.n_test


def case_table(settings: PhantomSettings, folder: str = "results/data") -> pd.DataFrame:
    """The case sheet of the phantom study (case, image, label, split, orientation)."""
    rows = []
    for i in range(settings.n_cases):
        case = f"{settings.prefix}{i:03d}"
        rows.append(
            {
                "case": case,
                "image": f"{folder}/images/{case}.nii.gz",
                "label": f"{folder}/labels/{case}.nii.gz",
                "split": "train" if i < settings.n_train else "test",
                "orientation": settings.orientations[i % len(settings.orientations)],
            }
        )
    return pd.DataFrame(rows, columns=["case", "image", "label", "split", "orientation"])


def write_study(*, settings: PhantomSettings, sheet_path: str | Path) -> pd.DataFrame:
    """Generate every phantom case and write the case sheet; images and labels go beside it
    (`images/<case>.nii.gz`, `labels/<case>.nii.gz`), as `case_table` names them."""
    folder = Path(sheet_path).parent.as_posix()
    table = case_table(settings, folder)
    for i, row in enumerate(table.itertuples()):
        image, label, affine = make_case(settings, i, row.orientation)
        io.save_volume(row.image, image, affine)
        io.save_volume(row.label, label, affine)
        log.info("case %s (%d/%d): %s, shape %s", row.case, i + 1, len(table), row.orientation, image.shape)
    sheet = table[["case", "image", "label", "split"]].copy()
    for column in ("image", "label"):  # paths in a sheet are relative to the sheet's folder
        sheet[column] = [Path(p).relative_to(folder).as_posix() for p in sheet[column]]
    io.write_tsv(sheet_path, sheet)
    return table


def make_case(
    settings: PhantomSettings, index: int, orientation: str = "LAS"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One case: (image int16 HU, label uint8 BTCV values, affine), deterministic in (seed, index)."""
    rng = np.random.default_rng([settings.seed, index])
    hu, label = _anatomy(settings.shape, settings.spacing, rng)
    hu = _acquire(hu, settings.spacing, settings.noise_hu, rng)
    affine = _canonical_affine(settings.shape, settings.spacing)
    image, new_affine = reorient(hu, affine, orientation)
    label, _ = reorient(label, affine, orientation)
    return image, label, new_affine


def _canonical_affine(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """RAS+ affine with the volume centred on the world origin."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-(n - 1) / 2 * s for n, s in zip(shape, spacing)]
    return affine


def _coordinates(shape, spacing):
    """Normalised patient coordinates: x (+right), y (+anterior) in units of the half field of
    view, keeping millimetre proportions; z from 0 (inferior) to 1 (superior)."""
    nx, ny, nz = shape
    half = min(nx * spacing[0], ny * spacing[1]) / 2
    x = (np.arange(nx) - (nx - 1) / 2) * spacing[0] / half
    y = (np.arange(ny) - (ny - 1) / 2) * spacing[1] / half
    z = (np.arange(nz) + 0.5) / nz
    return np.meshgrid(x, y, z, indexing="ij", sparse=True)


def _smooth_field(shape, rng, sigma_vox) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    return field / (field.std() + 1e-12)


def _ellipsoid(x, y, z, centre, radii) -> np.ndarray:
    """Normalised ellipsoid distance (1 on the surface)."""
    return np.sqrt(
        ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2
    )


def _anatomy(shape, spacing, rng) -> tuple[np.ndarray, np.ndarray]:
    """HU values and labels of one patient, before acquisition blur and noise."""
    x, y, z = _coordinates(shape, spacing)
    full = np.broadcast_shapes(x.shape, y.shape, z.shape)
    sigma = (shape[0] / 16, shape[1] / 16, max(shape[2] / 16, 1.0))
    field = [_smooth_field(full, rng, sigma) for _ in range(3)]
    j = lambda s: rng.uniform(-s, s)  # noqa: E731 - small per-patient jitter
    scale = rng.uniform(0.92, 1.08)

    hu = np.full(full, -1000.0, dtype=np.float32)
    label = np.zeros(full, dtype=np.uint8)

    # body: an ellipse that narrows a little toward the pelvis, with an irregular outline
    bx, by = 0.93 + j(0.03), 0.74 + j(0.03)
    body_r = np.sqrt((x / bx) ** 2 + ((y + 0.02) / by) ** 2) * (1 + 0.04 * (0.5 - z)) + 0.02 * field[0]
    body = body_r < 1.0
    hu[body] = -100.0 + 10 * field[1][body]  # subcutaneous fat
    wall = body & (body_r < 0.88) & (body_r >= 0.82)
    hu[wall] = 45.0
    inside = body & (body_r < 0.82)

    # visceral fat with bowel loops and gas
    hu[inside] = -95.0
    bowel = inside & (field[2] > 0.35) & (y > -0.35)
    hu[bowel] = 30.0 + 8 * field[1][bowel]
    gas = bowel & (field[2] > 1.6)
    hu[gas] = -850.0

    def place(mask, value, organ=None, noise=0.0):
        """Paint tissue over whatever was there; unlabelled tissue clears the label."""
        hu[mask] = value + noise * field[1][mask] if noise else value
        label[mask] = LABELS[organ] if organ else 0

    # organs, least important first so later ones win where they touch
    liver_c = (0.36 + j(0.04), 0.02 + j(0.04), 0.74 + j(0.04))
    liver = (
        inside & (_ellipsoid(x, y, z, liver_c, (0.48 * scale, 0.46 * scale, 0.42)) + 0.14 * field[0] < 1) & (x > -0.3)
    )
    place(liver, rng.uniform(95, 110), "liver", noise=8)
    spleen_c = (-0.52 + j(0.04), -0.22 + j(0.04), 0.66 + j(0.05))
    spleen = inside & (_ellipsoid(x, y, z, spleen_c, (0.15 * scale, 0.24 * scale, 0.2)) + 0.15 * field[1] < 1)
    place(spleen, rng.uniform(100, 118), "spleen", noise=7)
    for organ, cx, cz in (("right_kidney", 0.34, 0.34), ("left_kidney", -0.34, 0.40)):
        c = (cx + j(0.03), -0.36 + j(0.03), cz + j(0.04))
        kidney = inside & (_ellipsoid(x, y, z, c, (0.12 * scale, 0.16 * scale, 0.21)) + 0.12 * field[2] < 1)
        place(kidney, rng.uniform(165, 190), organ, noise=10)
        hilum = kidney & (_ellipsoid(x, y, z, (c[0] - np.sign(cx) * 0.07, c[1] + 0.02, c[2]), (0.06, 0.07, 0.09)) < 1)
        hu[hilum] = 70.0  # renal sinus, still labelled kidney
    # inferior vena cava (unlabelled, right of the aorta, next to the liver)
    ivc = inside & (np.hypot((x - 0.13) / 0.08, (y + 0.25 + 0.05 * (z - 0.5)) / 0.06) < 1)
    place(ivc, 125.0)
    aorta_c = (-0.07 + j(0.02) + 0.03 * (z - 0.5), -0.3 + j(0.02))
    aorta = inside & (np.hypot(x - aorta_c[0], y - aorta_c[1]) < 0.07 * scale + 0.005 * field[0])
    place(aorta, rng.uniform(200, 260), "aorta", noise=6)

    # spine and paraspinal muscles: never labelled
    vertebra = np.hypot(x, (y + 0.5) / 1.1) < 0.13
    hu[body & vertebra] = 260.0
    hu[body & vertebra & (np.hypot(x, (y + 0.5) / 1.1) > 0.105)] = 650.0
    posterior = (np.hypot(x / 0.05, (y + 0.68) / 0.08) < 1) & body
    hu[posterior] = 550.0
    for side in (-1, 1):
        muscle = body & (np.hypot((x - side * 0.2) / 0.11, (y + 0.58) / 0.09) < 1)
        hu[muscle] = 50.0
        label[muscle] = 0
    label[vertebra | posterior] = 0
    return hu, label


def _acquire(hu: np.ndarray, spacing, noise_hu: float, rng) -> np.ndarray:
    """Partial-volume blur (wider across thick slices) and correlated noise; HU as int16."""
    sigma_mm = (0.6, 0.6, 0.45 * spacing[2])
    blurred = ndimage.gaussian_filter(hu, [s / sp for s, sp in zip(sigma_mm, spacing)])
    noise = ndimage.gaussian_filter(rng.standard_normal(hu.shape).astype(np.float32), 0.6)
    noise *= noise_hu / (noise.std() + 1e-12)
    return np.clip(np.rint(blurred + noise), -1024, 3071).astype(np.int16)
