"""Voxel <-> PNG geometry: axial slices in radiological display, whatever the stored orientation.

An exported PNG shows one slice along the voxel axis closest to superior-inferior, with
patient right on the image left and anterior up. `SliceGeometry` records which voxel axes
became PNG rows and columns and whether they were flipped; it is all that is needed to go
from a PNG pixel box back to voxel indices and back again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

#: A pixel box on a PNG: (x0, y0, x1, y1), integer pixel edges, half-open (x0 <= col < x1).
PixelBox = tuple[int, int, int, int]
#: A voxel box: half-open (lo, hi) index range per voxel axis.
VoxelBox = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def orientation_code(affine: np.ndarray) -> str:
    """The nibabel axis code of an affine, e.g. 'LAS' for BTCV (each letter: where the index grows)."""
    return "".join(nib.aff2axcodes(affine))


def reorient(data: np.ndarray, affine: np.ndarray, code: str) -> tuple[np.ndarray, np.ndarray]:
    """Reorder and flip `data` so its axes follow `code`; return the matching affine.

    World coordinates are unchanged: every voxel keeps its position in space.
    """
    start = io_orientation(affine)
    end = axcodes2ornt(tuple(code))
    transform = ornt_transform(start, end)
    new = apply_orientation(data, transform)
    new_affine = affine @ inv_ornt_aff(transform, data.shape)
    return np.ascontiguousarray(new), new_affine


@dataclass(frozen=True)
class SliceGeometry:
    """How a 3D voxel grid maps onto axial PNGs (rows toward posterior, columns toward patient left)."""

    shape: tuple[int, int, int]
    slice_axis: int
    row_axis: int
    row_flip: bool
    col_axis: int
    col_flip: bool

    @classmethod
    def from_affine(cls, affine: np.ndarray, shape: tuple[int, ...]) -> SliceGeometry:
        """Choose axes from the affine: the voxel axis closest to each patient axis."""
        ornt = io_orientation(np.asarray(affine, dtype=float))  # row i: (world axis, +1/-1) of voxel axis i
        by_world = {int(ornt[i, 0]): (i, float(ornt[i, 1])) for i in range(3)}
        col_axis, toward_right = by_world[0]  # world x grows toward patient right (RAS+)
        row_axis, toward_anterior = by_world[1]
        slice_axis, _ = by_world[2]
        return cls(
            shape=tuple(int(n) for n in shape[:3]),
            slice_axis=slice_axis,
            row_axis=row_axis,
            row_flip=toward_anterior > 0,  # rows must grow toward posterior
            col_axis=col_axis,
            col_flip=toward_right > 0,  # columns must grow toward patient left
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SliceGeometry:
        return cls(
            shape=tuple(int(n) for n in d["shape"]),
            slice_axis=int(d["slice_axis"]),
            row_axis=int(d["row_axis"]),
            row_flip=bool(d["row_flip"]),
            col_axis=int(d["col_axis"]),
            col_flip=bool(d["col_flip"]),
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @property
    def n_slices(self) -> int:
        return self.shape[self.slice_axis]

    @property
    def png_shape(self) -> tuple[int, int]:
        """(rows, columns) of every exported PNG."""
        return self.shape[self.row_axis], self.shape[self.col_axis]

    def extract(self, volume: np.ndarray, k: int) -> np.ndarray:
        """Slice `k` of `volume` as it appears on the PNG (rows, columns)."""
        self._check_slice(k)
        index: list[Any] = [slice(None)] * 3
        index[self.slice_axis] = k
        plane = volume[tuple(index)]  # a view: np.take would copy the volume's worth of strides
        if self._remaining().index(self.row_axis) == 1:
            plane = plane.T
        if self.row_flip:
            plane = plane[::-1, :]
        if self.col_flip:
            plane = plane[:, ::-1]
        return plane

    def insert(self, volume: np.ndarray, k: int, image: np.ndarray) -> None:
        """Write a PNG-shaped 2D `image` into slice `k` of `volume` (the inverse of `extract`)."""
        self._check_slice(k)
        if image.shape != self.png_shape:
            raise ValueError(f"image shape {image.shape} != PNG shape {self.png_shape}")
        if self.row_flip:
            image = image[::-1, :]
        if self.col_flip:
            image = image[:, ::-1]
        if self._remaining().index(self.row_axis) == 1:
            image = image.T
        index: list[Any] = [slice(None)] * 3
        index[self.slice_axis] = k
        volume[tuple(index)] = image

    def box_to_voxels(self, box: PixelBox, k: int) -> VoxelBox:
        """Map a pixel box on the PNG of slice `k` to half-open voxel index ranges per axis."""
        self._check_slice(k)
        x0, y0, x1, y1 = (int(v) for v in box)
        rows, cols = self.png_shape
        if not (0 <= x0 < x1 <= cols and 0 <= y0 < y1 <= rows):
            raise ValueError(f"box {box} is empty or outside the {cols}x{rows} image")
        ranges: list[tuple[int, int]] = [(0, 0)] * 3
        ranges[self.slice_axis] = (k, k + 1)
        ranges[self.row_axis] = (rows - y1, rows - y0) if self.row_flip else (y0, y1)
        ranges[self.col_axis] = (cols - x1, cols - x0) if self.col_flip else (x0, x1)
        return tuple(ranges)  # type: ignore[return-value]

    def voxels_to_box(self, voxel_box: VoxelBox) -> tuple[PixelBox, int]:
        """Map half-open voxel ranges within one slice back to (pixel box, slice index)."""
        k0, k1 = voxel_box[self.slice_axis]
        if k1 != k0 + 1:
            raise ValueError(f"voxel box spans slices {k0}..{k1 - 1}, not one slice")
        rows, cols = self.png_shape
        r0, r1 = voxel_box[self.row_axis]
        c0, c1 = voxel_box[self.col_axis]
        y0, y1 = (rows - r1, rows - r0) if self.row_flip else (r0, r1)
        x0, x1 = (cols - c1, cols - c0) if self.col_flip else (c0, c1)
        return (x0, y0, x1, y1), k0

    def _remaining(self) -> list[int]:
        return [a for a in range(3) if a != self.slice_axis]

    def _check_slice(self, k: int) -> None:
        if not 0 <= k < self.n_slices:
            raise IndexError(f"slice {k} outside 0..{self.n_slices - 1}")


def mask_bbox(mask: np.ndarray) -> tuple[tuple[int, int], ...] | None:
    """Half-open bounding ranges of the True voxels of an n-d mask, or None if it is empty."""
    if not mask.any():
        return None
    ranges = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        ranges.append((int(hit[0]), int(hit[-1]) + 1))
    return tuple(ranges)
