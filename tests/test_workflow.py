"""The Snakemake workflow itself: it plans, lints clean, runs the data and export stages, and stops
bad input with one line naming the file."""

from __future__ import annotations

import hashlib
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import BTCV_CROWD, ORGANS, REPO, TINY, TINY_NNUNET, planned_jobs, snakemake, write_config

from samcrowd import boxes, io
from samcrowd.openlabeling import PRESETS

pytestmark = pytest.mark.workflow


def test_dry_run_of_the_embedded_default_lists_the_rules(tmp_path):
    run = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config.yaml"))
    assert run.returncode == 0, run.stderr
    out = run.stdout + run.stderr
    for rule, count in (
        ("phantom", 1),
        ("check_case", 14),
        ("export_slices", 8),
        ("simulate_crowd", 4),
        ("segmenter", 1),
        ("litemedsam_openvino", 1),  # encoder and decoder, converted once
        ("embed", 1),  # one batch of 8 cases (batch.cases 20)
        ("masks", 4),  # one per annotator and batch
        ("quality", 1),
        ("fuse", 8),
        ("evaluate_case", 8),
        ("evaluate", 1),
        ("nnunet_dataset", 3),  # gt, crowd, sparse
        ("nnunet_test_images", 1),
        ("nnunet_preprocess", 3),
        ("nnunet_train", 6),
        ("nnunet_predict", 3),
        ("nnunet_evaluate", 1),
        ("stats", 1),
        ("provenance", 1),
        ("figure_test_dice", 1),
        ("figure_annotation_dice", 1),
        ("figure_annotators", 1),
        ("figure_overlay", 2),
        ("all", 1),
    ):
        assert any(line.split() == [rule, str(count)] for line in out.splitlines()), (rule, out)


def test_the_sam_stage_runs_per_batch_of_cases(tmp_path):
    """8 annotated cases in batches of 3: 3 embed jobs and, for each of 4 annotators, 3 masks jobs."""
    more = write_config(tmp_path / "batch.yaml", "batch: {cases: 3}\n")
    run = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config.yaml"), str(more))
    assert run.returncode == 0, run.stderr
    jobs = planned_jobs(run)
    assert (jobs["embed"], jobs["masks"], jobs["fuse"]) == (3, 12, 8)
    out = run.stdout + run.stderr
    assert "output: results/embeddings/batch0003" in out and "results/embeddings/batch0004" not in out


def test_lint_is_clean(tmp_path):
    run = snakemake(tmp_path, "--lint", "--configfile", str(REPO / "config.yaml"))
    assert "Congratulations, your workflow is in a good condition!" in run.stdout + run.stderr, run.stdout


def test_tiny_study_runs_data_and_export_then_has_nothing_left_to_do(tmp_path):
    cfg = write_config(tmp_path / "tiny.yaml", TINY)
    run = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert run.returncode == 0, run.stderr
    manifests = sorted((tmp_path / "results/slices").glob("*.manifest.json"))
    assert [m.name for m in manifests] == ["synth000.manifest.json", "synth001.manifest.json"]  # train only
    orientations = [json.loads(m.read_text())["orientation"] for m in manifests]
    assert orientations == ["RAS", "LPS"]
    assert len(list((tmp_path / "results/slices/synth001").glob("synth001_*.png"))) == 12
    assert len(list((tmp_path / "results/data/checked").glob("*.json"))) == 3
    assert (tmp_path / "results/logs/export_slices/synth000.log").read_text().count("12/12 slices written") == 1
    tables = sorted(
        p.relative_to(tmp_path / "results/masks").as_posix() for p in (tmp_path / "results/masks").rglob("*.boxes.tsv")
    )
    assert tables == [f"ann0{a}/batch0001/synth00{c}.boxes.tsv" for a in (1, 2, 3, 4) for c in (0, 1)]
    assert sorted(p.name for p in (tmp_path / "results/annotations").iterdir()) == ["ann01", "ann02", "ann03", "ann04"]
    for case in ("synth000", "synth001"):
        for kind in ("stacked", "crowd"):
            assert (tmp_path / f"results/labels/{kind}/{case}.nii.gz").exists()
    assert len(pd.read_csv(tmp_path / "results/quality/annotators.tsv", sep="\t")) == 4
    volumes = pd.read_csv(tmp_path / "results/tables/annotation_volume_dice.tsv", sep="\t")
    assert {"ann01", "ann02", "ann03", "ann04", "stacked", "crowd"} <= set(volumes.source)
    assert "| mean |" in (tmp_path / "results/tables/annotation_dice.md").read_text()
    again = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert "Nothing to be done" in again.stdout + again.stderr


def sheet_project(tmp_path, rows):
    (tmp_path / "data").mkdir()
    affine = np.diag([-0.8, 0.8, 3.0, 1.0])
    io.save_volume(tmp_path / "data/a.nii.gz", np.zeros((16, 16, 6), np.int16), affine)
    io.save_volume(tmp_path / "data/a_seg.nii.gz", np.zeros((16, 16, 6), np.uint8), affine)
    io.save_volume(tmp_path / "data/bad_seg.nii.gz", np.zeros((16, 16, 5), np.uint8), affine)
    (tmp_path / "cases.tsv").write_text("case\timage\tlabel\tsplit\n" + "\n".join(rows) + "\n")
    return write_config(tmp_path / "c.yaml", "data: {source: sheet, sheet: cases.tsv}\nnnunet: {sources: []}\n")


@pytest.mark.parametrize(
    "rows, line",
    [
        (
            ["a\tdata/a.nii.gz\tdata/a_seg.nii.gz\ttrain", "a\tdata/a.nii.gz\t\ttest"],
            "cases.tsv:3: case 'a' is defined twice (first on line 2)",
        ),
        (
            ["a\tdata/a.nii.gz\t\ttest", "b\tdata/missing.nii.gz\t\ttrain"],
            "cases.tsv:3: image 'data/missing.nii.gz' does not exist",
        ),
        (["a\tdata/a.nii.gz\t\ttset"], "cases.tsv:2: case sheet: key 'split': 'tset' is not one of ['train', 'test']"),
        (["a\t/etc/hostname\t\ttrain"], "cases.tsv:2: image '/etc/hostname' lies outside the project"),
        (["a\tdata/a.nii.gz\t\ttrain"], "the simulated crowd needs expert labels, case 'a' has none"),
    ],
)
def test_a_bad_case_sheet_stops_the_workflow_before_any_job(tmp_path, rows, line):
    cfg = sheet_project(tmp_path, rows)
    run = snakemake(tmp_path, "--cores", "1", "--configfile", str(cfg))
    assert run.returncode != 0
    assert line in run.stderr
    assert not (tmp_path / "results").exists()


def test_a_label_on_another_grid_fails_its_case_with_one_line_and_writes_nothing(tmp_path):
    cfg = sheet_project(
        tmp_path, ["a\tdata/a.nii.gz\tdata/a_seg.nii.gz\ttrain", "b\tdata/a.nii.gz\tdata/bad_seg.nii.gz\ttest"]
    )
    run = snakemake(
        tmp_path,
        "results/data/checked/a.json",
        "results/data/checked/b.json",
        "--cores",
        "1",
        "--keep-going",
        "--configfile",
        str(cfg),
    )
    assert run.returncode != 0
    message = "ERROR samcrowd: data/bad_seg.nii.gz: label shape (16, 16, 5) differs from image shape (16, 16, 6)"
    assert message in run.stderr
    assert "Traceback" not in (tmp_path / "results/logs/check_case/b.log").read_text()
    assert not (tmp_path / "results/data/checked/b.json").exists()
    assert (tmp_path / "results/data/checked/a.json").exists()  # the good case is unaffected
    assert not list((tmp_path / "results").rglob(".tmp-*"))


def published_project(tmp_path, extra_files=()):
    """Cases img0001 and img0002 (train) and img0003 (test) on the study's own SAM volumes standing in
    for the CT, and the published prompts of those cases in annotations/campaign/ (flat, med2image)."""
    (tmp_path / "data").mkdir()
    rows = []
    for case, split in (("img0001", "train"), ("img0002", "train"), ("img0003", "test")):
        src = BTCV_CROWD / "sam_labels" / f"label{case[3:]}.nii.gz"
        (tmp_path / "data" / f"{case}.nii.gz").write_bytes(src.read_bytes())
        rows.append(f"{case}\tdata/{case}.nii.gz\t\t{split}")
    (tmp_path / "cases.tsv").write_text("case\timage\tlabel\tsplit\n" + "\n".join(rows) + "\n")
    crowd = tmp_path / "annotations" / "campaign"
    crowd.mkdir(parents=True)
    for path in sorted((BTCV_CROWD / "prompts").glob("img000[123]-*.txt")):
        (crowd / path.name).write_bytes(path.read_bytes())
    for name, text in extra_files:
        (crowd / name).write_text(text)
    return write_config(
        tmp_path / "c.yaml",
        "data: {source: sheet, sheet: cases.tsv}\n"
        "annotations: {source: folder, folder: annotations, naming: med2image}\n"
        "segmenter: {kind: box}\n"
        "nnunet: {sources: []}\n",
    )


def test_the_published_campaign_runs_through_the_workflow(tmp_path):
    cfg = published_project(tmp_path)
    run = snakemake(tmp_path, "results/masks/campaign/batch0001", "--cores", "2", "--configfile", str(cfg))
    assert run.returncode == 0, run.stderr
    frames = boxes.campaign_frames(BTCV_CROWD / "prompts", PRESETS["med2image"])
    reference = boxes.annotator_table(BTCV_CROWD / "prompts", "campaign", PRESETS["med2image"], ORGANS, frames.get)
    for case in ("img0001", "img0002"):
        table = boxes.read_table(tmp_path / f"results/masks/campaign/batch0001/{case}.boxes.tsv")
        expected = reference[reference.case == case].reset_index(drop=True)
        columns = ["organ", "slice", "x0", "y0", "x1", "y1", "i0", "i1", "j0", "j1", "k0", "k1", "file", "line"]
        assert table[columns].equals(expected[columns])  # LAS volumes: our export shows med2image's PNG
    log = (tmp_path / "results/logs/masks/campaign/batch0001.log").read_text()
    expected = reference[reference.case == "img0001"]
    assert f"img0001 / campaign: {boxes.summary(expected, ORGANS)}" in log
    assert "262 boxes on 85 slices (62 seen empty)" in boxes.summary(expected, ORGANS)
    assert sorted(p.name for p in (tmp_path / "results/masks/campaign/batch0001").glob("*.boxes.tsv")) == [
        "img0001.boxes.tsv",
        "img0002.boxes.tsv",
    ]  # img0003 is a test case: its prompts are not used


def test_a_bad_annotation_file_fails_its_jobs_with_one_line_and_no_table(tmp_path):
    cfg = published_project(tmp_path, [("img0001-slice050.txt", "0 0.5 0.5 0.1 0.1\r\n5 0.5 0.5 0.1\r\n")])
    run = snakemake(tmp_path, "results/masks/campaign/batch0001", "--cores", "2", "--configfile", str(cfg))
    assert run.returncode != 0
    assert (
        "annotations/campaign/img0001-slice050.txt:2: expected 5 fields 'class x_center y_center width height', got 4"
    ) in run.stderr
    assert not (tmp_path / "results/masks/campaign/batch0001").exists()
    assert not list((tmp_path / "results").rglob(".tmp-*"))


def test_sam_study_embeds_once_per_case_and_a_new_annotator_never_reruns_embed(tmp_path, tiny_checkpoint):
    """One embed job and one masks job per annotator for the batch; an added annotator adds one masks job."""
    cfg = write_config(
        tmp_path / "sam.yaml",
        TINY.replace(
            "segmenter:\n  kind: random_walker\n",
            f"""
segmenter: {{kind: sam, model_type: test_tiny, checkpoint: {tiny_checkpoint}, device: cpu}}
""",
        ),
    )
    run = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert run.returncode == 0, run.stderr
    for case in ("synth000", "synth001"):
        record = json.loads((tmp_path / f"results/embeddings/batch0001/{case}.json").read_text())
        assert (
            record["encoder_passes"]
            == 12
            == len(json.loads((tmp_path / f"results/slices/{case}.manifest.json").read_text())["slices"])
        )
        for annotator in ("ann01", "ann02", "ann03", "ann04"):
            out = nib.load(tmp_path / f"results/masks/{annotator}/batch0001/{case}.nii.gz")
            image = nib.load(tmp_path / f"results/data/images/{case}.nii.gz")
            assert out.shape == image.shape and np.array_equal(out.affine, image.affine)
    segmenter = json.loads((tmp_path / "results/segmenter.json").read_text())
    sha = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert segmenter["checkpoint"]["sha256"] == sha
    provenance = pd.read_csv(tmp_path / "results/tables/provenance.tsv", sep="\t").set_index("key").value
    assert provenance["segmenter.checkpoint_sha256"] == sha and provenance["segmenter.kind"] == "sam"
    assert provenance["campaign.plan"] == "False"  # which slices were whose: no plan, random slices
    more = write_config(tmp_path / "more.yaml", "crowd: {annotators: {ann05: hasty}}\n")
    plan = snakemake(tmp_path, "-n", "--configfile", str(cfg), str(more))
    assert plan.returncode == 0, plan.stderr
    assert planned_jobs(plan) == {
        "simulate_crowd": 1,
        "masks": 1,
        "quality": 1,
        "fuse": 2,
        "evaluate_case": 2,
        "evaluate": 1,
        "stats": 1,
        "figure_annotation_dice": 1,
        "figure_annotators": 1,
        "figure_overlay": 1,
        "all": 1,
    }  # no embed


def test_the_whole_study_with_nnunet_on_a_tiny_phantom(tiny_study):
    tmp_path = tiny_study
    raw = tmp_path / "results/nnunet/raw"
    for source, dataset_id in (("gt", 501), ("crowd", 502), ("sparse", 504)):
        names = sorted(p.name for p in (raw / f"Dataset{dataset_id}_samcrowd_{source}/imagesTr").glob("*.nii.gz"))
        assert names == [f"synth00{i}_0000.nii.gz" for i in range(4)]  # the training cases, never a test case
    assert sorted(p.name for p in (tmp_path / "results/nnunet/imagesTs").glob("*.nii.gz")) == [
        "synth004_0000.nii.gz",
        "synth005_0000.nii.gz",
    ]
    splits = json.loads(
        (tmp_path / "results/nnunet/preprocessed/Dataset502_samcrowd_crowd/splits_final.json").read_text()
    )
    assert len(splits) == 2 and sorted(splits[0]["val"] + splits[1]["val"]) == [f"synth00{i}" for i in range(4)]
    dice = pd.read_csv(tmp_path / "results/tables/test_dice.tsv", sep="\t")
    assert sorted(set(dice.source)) == ["crowd", "gt", "sparse"] and sorted(set(dice.case)) == ["synth004", "synth005"]
    assert len(dice) == 3 * 2 * 5
    table1 = (tmp_path / "results/tables/table1.md").read_text()
    assert "| p (gt vs crowd) | p (gt vs sparse) |" in table1 and table1.count("\n| ") == 7  # header + 5 organs + mean
    # the sparse source: nnU-Net's ignore label (N + 1) on the slices nobody voted on, declared in dataset.json
    sparse = raw / "Dataset504_samcrowd_sparse"
    assert json.loads((sparse / "dataset.json").read_text())["labels"]["ignore"] == 6
    for case in range(4):
        label = np.asarray(nib.load(sparse / f"labelsTr/synth00{case}.nii.gz").dataobj)
        stacked = np.asarray(nib.load(tmp_path / f"results/labels/stacked/synth00{case}.nii.gz").dataobj)
        fusion_table = pd.read_csv(tmp_path / f"results/labels/fusion/synth00{case}.tsv", sep="\t")
        voted = set(fusion_table[fusion_table.voters > 0].slice)
        assert 0 < len(voted) < 16 and set(np.unique(label)) <= set(range(7))
        for k in range(16):  # the phantom's slice axis is its third; nnU-Net's copy is RAS, so is the phantom's case 0
            if case == 0:
                assert (label[:, :, k] == 6).all() != (k in voted), k
                if k in voted:
                    assert np.array_equal(label[:, :, k], stacked[:, :, k]), k
    for figure in ("test_dice", "annotation_dice", "annotators", "overlay_crowd", "overlay_models"):
        assert (tmp_path / f"results/figures/{figure}.png").stat().st_size > 10_000
        assert (tmp_path / f"results/figures/{figure}.svg").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            "nnunet: {folds: 5}",
            "config: key 'nnunet.folds': 5 folds need at least 5 training cases, the case sheet has 4",
        ),
        ("nnunet: {dataset_ids: {gt: 7, crowd: 7}}", "config: key 'nnunet.dataset_ids.crowd': id 7 is also gt's"),
    ],
)
def test_impossible_nnunet_settings_stop_before_any_job(tmp_path, extra, message):
    cfg = write_config(tmp_path / "tiny.yaml", TINY_NNUNET)
    more = write_config(tmp_path / "more.yaml", extra + "\n")
    run = snakemake(tmp_path, "-n", "--configfile", str(cfg), str(more))
    assert run.returncode != 0 and message in run.stdout + run.stderr


def test_a_dataset_id_taken_by_another_dataset_fails_the_dataset_job(tmp_path):
    cfg = write_config(tmp_path / "tiny.yaml", TINY_NNUNET)
    (tmp_path / "results/nnunet/preprocessed/Dataset501_SomethingElse").mkdir(parents=True)
    run = snakemake(tmp_path, "results/nnunet/raw/Dataset501_samcrowd_gt", "--cores", "2", "--configfile", str(cfg))
    assert run.returncode != 0
    assert (
        "results/nnunet/preprocessed/Dataset501_SomethingElse: nnU-Net dataset id 501 is already used by "
        "Dataset501_SomethingElse"
    ) in run.stderr
    assert not (tmp_path / "results/nnunet/raw/Dataset501_samcrowd_gt").exists()
