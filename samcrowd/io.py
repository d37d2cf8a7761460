"""Reading and writing files: NIfTI with header sanity checks, JSON and TSV, all atomically.

Every writer goes through `atomic_output`: the data lands in a hidden temporary name beside
the target and is renamed into place only when complete, so a killed job never leaves a
half-written file that a later run would trust.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from samcrowd.errors import SamcrowdError

#: Refuse images larger than this before allocating (a corrupt or hostile header).
MAX_VOXELS = 2_000_000_000
MAX_DIM = 8192


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the full file name as its suffix (``.tmp-<pid>-name.nii.gz``)
    so that libraries choosing a format by extension still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    _remove(tmp)
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if directory and path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete what killed earlier attempts left beside `path` (``.tmp-<pid>-<name>``); return it.

    Only the job that makes `path` calls this, so no live writer can own these names.
    """
    path = Path(path)
    stale = sorted(path.parent.glob(f".tmp-*-{glob.escape(path.name)}")) if path.parent.is_dir() else []
    for tmp in stale:
        _remove(tmp)
    return stale


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically, keys in insertion order, human-readable."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, naming the file if it is missing or malformed."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise SamcrowdError("file not found", path) from None
    except json.JSONDecodeError as e:
        raise SamcrowdError(f"invalid JSON: {e.msg}", path, e.lineno) from None


def write_tsv(path: str | os.PathLike, table: pd.DataFrame) -> None:
    """Write a table as tab-separated text atomically (no index, fixed float format)."""
    with atomic_output(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, lineterminator="\n")


def read_header(path: str | os.PathLike) -> tuple[tuple[int, ...], np.ndarray]:
    """Return (shape, affine) of a 3D NIfTI from its header only, refusing absurd headers.

    Raises SamcrowdError naming the file when it is missing, unreadable, not 3D, too large
    to be a CT volume, or has a non-finite or singular affine.
    """
    img = _open(path)
    return tuple(int(n) for n in img.shape), np.asarray(img.affine, dtype=float)


def load_volume(path: str | os.PathLike, dtype: np.dtype | type | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load a 3D NIfTI as (array, affine); `dtype` casts (scaled values for float types)."""
    img = _open(path)
    try:
        if dtype is not None and np.issubdtype(np.dtype(dtype), np.floating):
            data = np.asarray(img.get_fdata(dtype=np.dtype(dtype)))
        elif dtype is not None and _small_int_scaled(img):
            data = _cast_via_lut(img, np.dtype(dtype), path)
        else:
            data = np.asarray(img.dataobj)
            if dtype is not None:
                data = _cast_exact(data, np.dtype(dtype), path)
    except (OSError, EOFError, ValueError) as e:
        raise SamcrowdError(f"cannot read voxel data: {e}", path) from None
    return data, np.asarray(img.affine, dtype=float)


def _small_int_scaled(img: nib.Nifti1Image) -> bool:
    """True for 8/16-bit integer storage with a scale factor (labels saved as scaled floats)."""
    stored = img.get_data_dtype()
    slope, inter = getattr(img.dataobj, "slope", 1.0), getattr(img.dataobj, "inter", 0.0)
    return stored.kind in "iu" and stored.itemsize <= 2 and (slope != 1.0 or inter != 0.0)


def _cast_via_lut(img: nib.Nifti1Image, dtype: np.dtype, path: str | os.PathLike) -> np.ndarray:
    """Apply the scale to each stored integer value once (a lookup table), not to every voxel."""
    raw = np.asarray(img.dataobj.get_unscaled())
    info = np.iinfo(raw.dtype)
    codes = np.arange(info.min, info.max + 1, dtype=np.int64)
    values = codes * float(img.dataobj.slope) + float(img.dataobj.inter)
    index = raw if info.min == 0 else raw.astype(np.int32) - info.min
    present = np.bincount(index.ravel(order="K"), minlength=codes.size) > 0
    table = np.zeros(codes.size, dtype=dtype)
    table[present] = _cast_exact(values[present], dtype, path)
    return table[index]


def _cast_exact(data: np.ndarray, dtype: np.dtype, path: str | os.PathLike) -> np.ndarray:
    """Cast to an integer type, refusing values that would change (labels stored as floats)."""
    if data.dtype == dtype:
        return data
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)):
            raise SamcrowdError("non-finite values where integers are expected", path)
        rounded = np.rint(data)
        if np.max(np.abs(rounded - data), initial=0.0) > 1e-3:
            raise SamcrowdError("non-integer values where integer labels are expected", path)
        data = rounded
    info = np.iinfo(dtype)
    if data.size and (data.min() < info.min or data.max() > info.max):
        raise SamcrowdError(f"values outside the range of {dtype}", path)
    return data.astype(dtype)


def _open(path: str | os.PathLike) -> nib.Nifti1Image:
    path = Path(path)
    if not path.is_file():
        raise SamcrowdError("file not found", path)
    try:
        img = nib.load(path)
    except Exception as e:  # nibabel raises many types for broken files
        raise SamcrowdError(f"not a readable NIfTI image ({type(e).__name__}: {e})", path) from None
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        img = img.slicer[..., 0]
        shape = img.shape
    if len(shape) != 3:
        raise SamcrowdError(f"expected a 3D volume, header says shape {tuple(shape)}", path)
    if any(n < 1 or n > MAX_DIM for n in shape) or int(np.prod(shape, dtype=np.int64)) > MAX_VOXELS:
        raise SamcrowdError(f"refusing absurd dimensions {tuple(shape)} in the header", path)
    affine = np.asarray(img.affine, dtype=float)
    if not np.all(np.isfinite(affine)):
        raise SamcrowdError("the header's affine has NaN or infinite values", path)
    if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise SamcrowdError("the header's affine is singular (zero voxel size?)", path)
    return img


def save_volume(path: str | os.PathLike, data: np.ndarray, affine: np.ndarray) -> None:
    """Write a 3D array as NIfTI (sform and qform = affine, scanner space) atomically."""
    img = nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=float))
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    with atomic_output(path) as tmp:
        nib.save(img, tmp)
