"""Helpers shared by the benchmarks: timing and a phantom case with simulated annotators."""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path

from samcrowd import boxes, crowd, export, io, segmenters
from samcrowd.config import check_config
from samcrowd.openlabeling import PRESETS
from samcrowd.phantom import LABELS, PhantomSettings, make_case

#: The checkout the benchmarks belong to (its Snakefile, configs and test data).
REPO = Path(__file__).resolve().parents[1]
#: The real abdominal CT with organ labels (TotalSegmentator's example scan).
SCAN = REPO / "tests" / "data" / "totalseg-example"

ORGANS = ["spleen", "right_kidney", "left_kidney", "liver", "aorta"]


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """This checkout's workflow run in `workdir` by the running interpreter's snakemake."""
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]


def export_real_ct(folder: Path) -> tuple[dict, export.SliceGeometry]:
    """The real CT exported as the workflow does (PNGs in folder/png): its manifest and geometry."""
    manifest = export.export_case(
        case="ct",
        image_path=SCAN / "example_ct_sm.nii.gz",
        out_dir=folder / "png",
        manifest_path=folder / "ct.manifest.json",
        **export.settings(),
    )
    return manifest, export.load_manifest(folder / "ct.manifest.json")[1]


def litemedsam_on_cpu(folder: Path, threads: int) -> segmenters.Segmenter:
    """LiteMedSAM as the workflow runs it on a CPU: its image encoder and box decoder converted for
    OpenVINO (the litemedsam_openvino job's work, into `folder`), compiled for `threads` threads."""
    base = check_config({})["segmenter"]
    seg = segmenters.make_segmenter({**base, "kind": "litemedsam"}, segmenters.check_checkpoint("", "", "litemedsam"))
    seg.encoder_ir = (str(folder / "encoder.xml"), str(folder / "encoder.bin"))
    seg.decoder_ir = (str(folder / "decoder.xml"), str(folder / "decoder.bin"))
    seg.export_encoder(*seg.encoder_ir)
    seg.export_decoder(*seg.decoder_ir)
    seg.prepare(threads)
    return seg


def every_slice_profiles(tight: str) -> dict[str, crowd.Profile]:
    """Box sources for the real-CT benchmarks: exact boxes (named `tight`) and the embedded default's
    simulated profiles with every slice opened."""
    out = {tight: crowd.Profile(jitter_px=0, scale_bias=1, miss_rate=0, slice_fraction=1, wrong_class_rate=0)}
    for name, section in check_config({})["crowd"]["profiles"].items():
        out[name] = dataclasses.replace(crowd.Profile.from_config(section), slice_fraction=1.0)
    return out


def median_time(fn, repeat: int = 3) -> tuple[float, object]:
    """Median wall time of `fn()` over `repeat` runs, and its last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def phantom_with_crowd(folder: Path, case_index: int = 0, code: str = "LAS", shape=None) -> tuple[Path, list[Path]]:
    """Export one default phantom case and simulate the default crowd on it; return (folder, box tables)."""
    defaults = check_config({})
    settings = PhantomSettings.from_config(shape=shape) if shape else PhantomSettings.from_config()
    image, label, affine = make_case(settings, case_index, code)
    io.save_volume(folder / "img.nii.gz", image, affine)
    io.save_volume(folder / "seg.nii.gz", label, affine)
    manifest = export.export_case(
        case="c",
        image_path=folder / "img.nii.gz",
        out_dir=folder / "png",
        manifest_path=folder / "c.manifest.json",
        **export.settings(),
    )
    frame = boxes.frame_from_manifest(manifest, PRESETS["project"])
    tables = []
    for name, profile in defaults["crowd"]["annotators"].items():
        out = folder / name
        crowd.simulate_annotator(
            name=name,
            profile=crowd.Profile.from_config(defaults["crowd"]["profiles"][profile]),
            cases=[(folder / "seg.nii.gz", folder / "c.manifest.json")],
            organ_values={o: LABELS[o] for o in ORGANS},
            out_dir=out,
            seed=0,
            formats=("yolo", "voc"),
        )
        table = boxes.annotator_table(out, name, PRESETS["project"], ORGANS, {"c": frame}.get)
        io.write_tsv(folder / f"{name}.tsv", table)
        tables.append(folder / f"{name}.tsv")
    return folder, tables
