"""From boxes to label volumes: cached slice embeddings, batched decoding, overlap resolution.

`embed_case` runs a segmenter's image encoder once per exported slice of a case and stores
the features as one float16 array (slices x C x h x w) with a JSON record of its key. The
key holds the checkpoint hash and the preprocessing, so embeddings made with another
checkpoint are refused, never reused. `mask_case` decodes one annotator's boxes slice by
slice (all boxes of a slice in one call), resolves overlapping organs by the segmenter's
score, and writes a label volume (organ values 1..N in config order) on the case image's
exact grid, plus a coverage table of the organ slices the annotator looked at.

The workflow's jobs take a batch of cases (`embed_batch`, `mask_batch`): one segmenter, its
model loaded once, serves every case of the batch; each case keeps its own files in the
batch's folder (`embedding_files`, `mask_files`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from samcrowd import io
from samcrowd.boxes import read_table, write_case_table
from samcrowd.errors import SamcrowdError
from samcrowd.export import load_manifest, png_stem, read_png
from samcrowd.jobs import progress
from samcrowd.segmenters import Segmenter

log = logging.getLogger(__name__)

COVERAGE_COLUMNS = ["case", "annotator", "slice", "organ", "status", "boxes", "voxels"]


def embedding_files(folder: str | Path, case: str) -> tuple[Path, Path]:
    """A case's embeddings in an embed job's batch folder: the float16 array and its record."""
    return Path(folder) / f"{case}.npy", Path(folder) / f"{case}.json"


def mask_files(folder: str | Path, case: str) -> dict[str, Path]:
    """A case's files in a masks job's batch folder: label volume, coverage table and box table."""
    folder = Path(folder)
    return {
        "volume": folder / f"{case}.nii.gz",
        "coverage": folder / f"{case}.coverage.tsv",
        "boxes": folder / f"{case}.boxes.tsv",
    }


def case_masks(*, annotators: list[str], folders: list[str], case: str) -> dict[str, tuple[Path, Path]]:
    """{annotator: (label volume, coverage table)} of one case, from each annotator's masks folder."""
    files = [mask_files(folder, case) for folder in folders]
    return {a: (f["volume"], f["coverage"]) for a, f in zip(annotators, files, strict=True)}


def key_digest(key: dict[str, Any]) -> str:
    """A stable SHA-256 of an embedding key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def embed_case(
    *,
    segmenter: Segmenter,
    manifest_path: str | Path,
    slices_dir: str | Path,
    out_array: str | Path,
    out_record: str | Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """Encode every exported slice of a case once; write the float16 features and their record."""
    segmenter.prepare(threads, decode=False)
    manifest, geometry = load_manifest(manifest_path)
    records = manifest["slices"]
    array = None
    with io.atomic_output(out_array) as tmp:
        for i, record in enumerate(progress(records, total=len(records), desc=f"embed {manifest['case']}")):
            features = segmenter.embed(read_png(Path(slices_dir) / record["png"], geometry.png_shape))
            if array is None:
                array = np.lib.format.open_memmap(
                    tmp, mode="w+", dtype=np.float16, shape=(len(records), *features.shape)
                )
            array[i] = features
        if array is None:
            raise SamcrowdError("no exported slices to embed", manifest_path)
        array.flush()
        shape = list(array.shape)
        del array
    key = segmenter.embedding_key()
    record = {
        "case": manifest["case"],
        "key": key,
        "key_sha256": key_digest(key),
        "slices": [r["slice"] for r in records],
        "png_shape": list(geometry.png_shape),
        "shape": shape,
        "dtype": "float16",
        "encoder_passes": len(records),
        "runtime": runtime(segmenter, "encoder"),
    }
    io.write_json(out_record, record)
    log.info(
        "%s: %d encoder passes (%s), embeddings %s float16 (%.1f MiB)",
        manifest["case"],
        len(records),
        record["runtime"],
        shape,
        np.prod(shape) * 2 / 2**20,
    )
    return record


def embed_batch(
    *,
    segmenter: Segmenter,
    cases: list[str],
    manifests: list[str],
    slices: list[str],
    out_folder: str | Path,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """The `embed` job: every case of a batch through one loaded encoder, into `embedding_files`."""
    segmenter.prepare(threads, decode=False)
    Path(out_folder).mkdir(parents=True, exist_ok=True)
    records = []
    for i, (case, manifest, slices_dir) in enumerate(zip(cases, manifests, slices, strict=True)):
        log.info("batch case %d/%d: %s", i + 1, len(cases), case)
        array, record = embedding_files(out_folder, case)
        records.append(
            embed_case(
                segmenter=segmenter,
                manifest_path=manifest,
                slices_dir=slices_dir,
                out_array=array,
                out_record=record,
                threads=threads,
            )
        )
    return records


def runtime(segmenter: Segmenter, part: str) -> str:
    """What runs a SAM-family segmenter's `part` ('encoder' or 'decoder') here, with its version and
    device (the embeddings' record, the masks and fuse job logs)."""
    from samcrowd.provenance import package_version

    if (segmenter.encoder_runtime() if part == "encoder" else segmenter.decoder_runtime()) == "openvino":
        return f"openvino {package_version('openvino')} cpu"
    return f"torch {package_version('torch')} {segmenter.torch_device.type}"


class Embeddings:
    """A case's cached embeddings, checked against the segmenter that will decode them."""

    def __init__(self, array_path: str | Path, record_path: str | Path, segmenter: Segmenter):
        self.record = io.read_json(record_path)
        expected = key_digest(segmenter.embedding_key())
        if self.record.get("key_sha256") != expected:
            raise SamcrowdError(
                f"stale embeddings: made with key {self.record.get('key_sha256', '?')[:12]} "
                f"({self.record.get('key', {}).get('checkpoint_sha256', '?')[:12]}), the segmenter now has "
                f"{expected[:12]}; rerun the embed job",
                record_path,
            )
        self.array = np.load(array_path, mmap_mode="r")
        if list(self.array.shape) != self.record["shape"]:
            raise SamcrowdError(
                f"array shape {list(self.array.shape)} differs from its record {self.record['shape']}", array_path
            )
        self.index = {k: i for i, k in enumerate(self.record["slices"])}

    def __getitem__(self, k: int) -> np.ndarray:
        if k not in self.index:
            raise SamcrowdError(f"slice {k} has no embedding (was it exported?)")
        return np.asarray(self.array[self.index[k]])


def compose(masks: np.ndarray, scores: np.ndarray, organ_values: np.ndarray) -> np.ndarray:
    """One label plane from per-box masks: each pixel takes the organ of the best-scoring box covering it."""
    if len(masks) == 0:
        return np.zeros(masks.shape[1:], dtype=np.uint8)
    ranked = np.where(masks, scores[:, None, None], -np.inf)
    best = ranked.argmax(axis=0)
    plane = np.asarray(organ_values, dtype=np.uint8)[best]
    plane[~masks.any(axis=0)] = 0
    return plane


def mask_case(
    *,
    segmenter: Segmenter,
    annotator: str,
    table_path: str | Path,
    manifest_path: str | Path,
    slices_dir: str | Path,
    image_path: str | Path,
    organs: list[str],
    out_volume: str | Path,
    out_coverage: str | Path,
    embeddings: Embeddings | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Decode one annotator's boxes on one case into a label volume and a coverage table."""
    segmenter.prepare(threads, encode=embeddings is None)
    manifest, geometry = load_manifest(manifest_path)
    shape, affine = io.read_header(image_path)
    if list(shape) != manifest["shape"]:
        raise SamcrowdError(f"image shape {shape} differs from its export manifest {manifest['shape']}", image_path)
    table = read_table(table_path)
    unknown = sorted(set(table.organ) - set(organs) - {""})
    if unknown:
        raise SamcrowdError(f"organ '{unknown[0]}' is not in the config's organs", table_path)
    value = {organ: i + 1 for i, organ in enumerate(organs)}
    volume = np.zeros(shape, dtype=np.uint8)
    coverage = []
    drawn = table[table.organ != ""]
    for k in progress(sorted(set(table.slice)), desc=f"masks {manifest['case']}"):
        rows = drawn[drawn.slice == k]
        voxels: dict[str, int] = {}
        if len(rows):
            boxes = rows[["x0", "y0", "x1", "y1"]].to_numpy(dtype=np.int64)
            png = read_png(Path(slices_dir) / f"{png_stem(manifest['case'], int(k))}.png", geometry.png_shape)
            masks, scores = segmenter.segment(png, boxes, None if embeddings is None else embeddings[int(k)])
            plane = compose(masks, np.asarray(scores, dtype=float), rows.organ.map(value).to_numpy())
            geometry.insert(volume, int(k), plane)
            voxels = {organ: int((plane == v).sum()) for organ, v in value.items()}
        for organ in organs:
            n = int((rows.organ == organ).sum())
            coverage.append(
                {
                    "case": manifest["case"],
                    "annotator": annotator,
                    "slice": int(k),
                    "organ": organ,
                    "status": "boxed" if n else "absent",
                    "boxes": n,
                    "voxels": voxels.get(organ, 0),
                }
            )
    io.save_volume(out_volume, volume, affine)
    cov = pd.DataFrame(coverage, columns=COVERAGE_COLUMNS)
    io.write_tsv(out_coverage, cov)
    log.info(
        "%s: %d boxes on %d slices -> %s",
        manifest["case"],
        len(drawn),
        drawn.slice.nunique(),
        ", ".join(f"{o} {int((volume == v).sum())} voxels" for o, v in value.items()),
    )
    return volume, cov


def mask_batch(
    *,
    segmenter: Segmenter,
    annotator: str,
    folder: str | Path,
    cases: list[str],
    manifests: list[str],
    slices: list[str],
    images: list[str],
    embeddings: str | Path | None,
    out_folder: str | Path,
    organs: list[str],
    naming: str,
    class_overrides: dict[str, str],
    known_cases: set[str],
    unassigned: str,
    assignment: str | Path | None = None,
    threads: int | None = None,
) -> None:
    """The `masks` job: one annotator's OpenLabeling files on every case of a batch -> box table,
    label volume and coverage table per case (`mask_files`), through one loaded segmenter.

    `embeddings`: the batch's embed folder for SAM-family segmenters, else None. `assignment`:
    the campaign plan, when there is one (files for slices not assigned: `unassigned`).
    """
    assigned = None
    if assignment is not None:
        from samcrowd.campaign import assigned_slices, read_assignment

        assigned = assigned_slices(read_assignment(assignment), annotator)
    segmenter.prepare(threads, encode=embeddings is None)
    if embeddings is not None:
        log.info("boxes decoded by %s", runtime(segmenter, "decoder"))
    Path(out_folder).mkdir(parents=True, exist_ok=True)
    for i, (case, manifest, slices_dir, image) in enumerate(zip(cases, manifests, slices, images, strict=True)):
        log.info("batch case %d/%d: %s", i + 1, len(cases), case)
        files = mask_files(out_folder, case)
        write_case_table(
            folder=folder,
            annotator=annotator,
            case=case,
            manifest_path=manifest,
            out=files["boxes"],
            naming=naming,
            organs=organs,
            class_overrides=class_overrides,
            known_cases=known_cases,
            assigned=assigned,
            unassigned=unassigned,
        )
        mask_case(
            segmenter=segmenter,
            annotator=annotator,
            table_path=files["boxes"],
            manifest_path=manifest,
            slices_dir=slices_dir,
            image_path=image,
            organs=organs,
            out_volume=files["volume"],
            out_coverage=files["coverage"],
            embeddings=None if embeddings is None else Embeddings(*embedding_files(embeddings, case), segmenter),
            threads=threads,
        )


def write_segmenter_record(*, settings: dict[str, Any], out: str | Path) -> dict[str, Any]:
    """Check the checkpoint (if any) and write what makes the masks: settings, checkpoint hash, versions."""
    from samcrowd import segmenters

    checkpoint = None
    if segmenters.SEGMENTERS[settings["kind"]].needs_checkpoint:
        checkpoint = segmenters.check_checkpoint(settings["checkpoint"], settings["model_type"], settings["kind"])
    segmenter = segmenters.make_segmenter(settings, checkpoint)
    record = {
        "settings": settings,
        "checkpoint": checkpoint,
        "identity": segmenter.identity(),
        "versions": _versions(settings["kind"]),
    }
    io.write_json(out, record)
    return record


def segmenter_from_record(
    *,
    path: str | Path,
    any_device: bool,
    encoder_ir: tuple[str, str] | None = None,
    decoder_ir: tuple[str, str] | None = None,
) -> Segmenter:
    """The segmenter a `segmenter` job recorded (the checkpoint hash is not recomputed), with
    LiteMedSAM's encoder and decoder converted for OpenVINO when the workflow made them.

    `any_device` (filling, which only decodes and runs in CPU group jobs on a cluster), whatever
    `segmenter.device` says: through the converted decoder on the CPU where there is one (the
    job never imports torch), else on the job machine's GPU if it has one, else on its CPU in fp32.
    """
    from samcrowd import devices, segmenters

    record = io.read_json(path)
    settings = record["settings"]
    if any_device and decoder_ir is not None and settings["runtime"] != "torch":
        settings = {**settings, "device": "cpu", "precision": "fp32"}
    elif any_device:
        on_gpu = devices.resolve_device("auto", "segmenter.device") == "cuda"
        settings = {**settings, "device": "auto", "precision": settings["precision"] if on_gpu else "fp32"}
    return segmenters.make_segmenter(settings, record["checkpoint"], encoder_ir, decoder_ir)


def export_openvino(
    *, segmenter_json: str | Path, encoder: tuple[str, str], decoder: tuple[str, str]
) -> dict[str, dict[str, Any]]:
    """The `litemedsam_openvino` job: load LiteMedSAM's checked weights once and convert its image
    encoder and its box decoder for OpenVINO, each an (.xml, .bin) pair (once per workflow)."""
    segmenter = segmenter_from_record(path=segmenter_json, any_device=False)
    segmenter.prepare()
    infos = {"encoder": segmenter.export_encoder(*encoder), "decoder": segmenter.export_decoder(*decoder)}
    for part, info in infos.items():
        log.info(
            "%s converted for %s %s: %s (%.1f MiB)",
            part,
            info["runtime"],
            info["version"],
            info["xml"],
            Path(info["bin"]).stat().st_size / 2**20,
        )
    return infos


def _versions(kind: str) -> dict[str, str]:
    from samcrowd import segmenters
    from samcrowd.provenance import package_version

    names = ["samcrowd", "numpy", "scikit-image", *segmenters.SEGMENTERS[kind].packages]
    return {name: package_version(name) for name in names}
