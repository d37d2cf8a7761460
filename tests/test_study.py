"""The study's plan: which cases and annotators each stage takes, and what stops a run before any job."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from conftest import REPO

from samcrowd import study
from samcrowd.config import load_yaml
from samcrowd.errors import SamcrowdError

DEMO = load_yaml(REPO / "config.yaml")


def demo(**sections) -> dict:
    """The embedded default with some sections' keys replaced."""
    config = copy.deepcopy(DEMO)
    for section, values in sections.items():
        config[section].update(values)
    return config


def test_the_embedded_default_plans_every_stage():
    plan = study.plan(demo(), environ={})
    train = [c for c in plan.cases.index if plan.cases.loc[c, "split"] == "train"]
    assert (len(train), len(plan.test)) == (8, 6)
    assert plan.train == train == plan.annotated == plan.evaluated  # export.splits: [train], all labelled
    assert plan.annotators == ["ann01", "ann02", "ann03", "ann04"]
    assert plan.overlay_cases == {"crowd": plan.evaluated[0], "models": plan.test[0]}
    assert plan.nnunet_paths == {k: f"results/nnunet/{k}" for k in ("raw", "preprocessed", "results")}
    assert Path(plan.checkpoint).name == "lite_medsam.pth" and Path(plan.checkpoint).is_file()
    first_test = plan.cases.loc[plan.test[0]]
    assert first_test["image"].endswith(f"{plan.test[0]}.nii.gz") and first_test["label"]


def test_plan_validates_the_config_and_fills_its_defaults():
    config = {}
    study.plan(config, environ={})
    assert config["data"]["source"] == "phantom" and config["export"]["splits"] == ["train"]
    with pytest.raises(SamcrowdError, match=r"^config: unknown key 'export.evry'"):
        study.plan({"export": {"evry": 2}}, environ={})


def test_nnunet_folders_come_from_the_config_then_the_environment_then_results():
    paths = {"raw": "/data/raw", "preprocessed": None, "results": None}
    assert study.nnunet_paths(paths, {"nnUNet_preprocessed": "/scratch/pre"}) == {
        "raw": "/data/raw",
        "preprocessed": "/scratch/pre",
        "results": "results/nnunet/results",
    }


CASES = {
    "train": ["t1", "t2", "t3"],
    "test": ["s1"],
    "annotated": ["t1", "t2", "t3"],
    "labelled": ["t1", "t2", "t3", "s1"],
}


@pytest.mark.parametrize(
    "nnunet, change, message",
    [
        (
            {"sources": ["gt", "crowd"], "folds": 5},
            {},
            "config: key 'nnunet.folds': 5 folds need at least 5 training cases, the case sheet has 3",
        ),
        (
            {"sources": ["gt"], "folds": 2},
            {"labelled": ["t1", "t3", "s1"]},
            "nnU-Net source gt needs expert labels of every training case; 't2' has none",
        ),
        (
            {"sources": ["gt", "stacked"], "folds": 2},
            {"annotated": ["t1", "t2"]},
            "nnU-Net source stacked needs crowd labels of every training case; 't3' is not annotated (export.splits)",
        ),
    ],
)
def test_an_nnunet_stage_that_cannot_work_stops_with_one_line(nnunet, change, message):
    with pytest.raises(SamcrowdError) as e:
        study.check_nnunet(nnunet, **{**CASES, **change})
    assert str(e.value) == message


def test_without_labelled_test_cases_or_crowd_labels_the_nnunet_stage_is_off_and_says_why():
    notes = []
    assert study.nnunet_sources({"sources": ["gt", "crowd"]}, test=[], annotators=["a"], notes=notes) == []
    assert notes == [
        "nnU-Net stage off: the case sheet has no test case with an expert label (split test); "
        "add some to switch it on, or set nnunet.sources: [] to say it is off"
    ]
    notes = []
    assert study.nnunet_sources({"sources": ["gt", "crowd"]}, test=["s1"], annotators=[], notes=notes) == []
    assert notes == [
        "nnU-Net stage off: it compares models trained on crowd labels with the expert-label model, "
        "and there are no crowd labels yet"
    ]
    notes = []
    assert study.nnunet_sources({"sources": ["gt", "crowd"]}, test=["s1"], annotators=["a"], notes=notes) == [
        "gt",
        "crowd",
    ]
    assert study.nnunet_sources({"sources": []}, test=[], annotators=[], notes=notes) == [] and notes == []


def test_without_nnunet_sources_any_cases_will_do():
    study.check_nnunet({"sources": [], "folds": 5}, train=[], test=[], annotated=[], labelled=[])
    study.check_nnunet({"sources": ["crowd"], "folds": 2}, **{**CASES, "labelled": ["s1"]})  # crowd needs no gt


def test_an_nnunet_check_stops_the_plan():
    with pytest.raises(
        SamcrowdError, match="'nnunet.folds': 9 folds need at least 9 training cases, the case sheet has 8"
    ):
        study.plan(demo(nnunet={"folds": 9}), environ={})


@pytest.mark.parametrize("name", ["gt", "crowd", "stacked", "sparse"])
def test_an_annotator_may_not_take_a_label_sources_name(tmp_path, name):
    for folder in ("ann01", name):
        (tmp_path / folder).mkdir()
    annotations = {"source": "folder", "folder": str(tmp_path), "annotators": []}
    with pytest.raises(SamcrowdError) as e:
        study.study_annotators(annotations, crowd={})
    assert (
        str(e.value)
        == f"annotator name '{name}' is reserved for a label source (gt, crowd, stacked, sparse); rename it"
    )
    with pytest.raises(SamcrowdError, match=f"annotator name '{name}' is reserved"):
        study.study_annotators(
            {"source": "simulate", "folder": "annotations"}, crowd={"annotators": {"ann01": "careful", name: "hasty"}}
        )


def test_annotators_are_the_simulated_crowd_the_listed_ones_or_every_subfolder(tmp_path):
    for folder in ("b", "a", ".hidden"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "c0_0001.txt").write_text("")  # one file returned
    (tmp_path / "notes.txt").write_text("")
    folder = {"source": "folder", "folder": str(tmp_path)}
    assert study.study_annotators({**folder, "annotators": []}, crowd={}) == (["a", "b"], ["a", "b"])
    assert study.study_annotators({**folder, "annotators": ["b"]}, crowd={}) == (["b"], ["b"])
    simulated = {"source": "simulate", "folder": "nowhere", "annotators": []}
    crowd = {"annotators": {"x": "careful", "y": "hasty"}}
    assert study.study_annotators(simulated, crowd=crowd) == (["x", "y"], ["x", "y"])


def test_annotators_not_back_yet_wait_and_no_folder_at_all_switches_the_annotation_stages_off(tmp_path):
    (tmp_path / "ann02/YOLO_darknet").mkdir(parents=True)
    (tmp_path / "ann02/YOLO_darknet/c0_0001.txt").write_text("")
    notes = []
    listed = {"source": "folder", "folder": str(tmp_path), "annotators": ["ann01", "ann02", "ann03"]}
    assert study.study_annotators(listed, crowd={}, notes=notes) == (["ann01", "ann02", "ann03"], ["ann02"])
    assert notes == [
        f"waiting for 2 annotator(s) with no files in '{tmp_path}' yet (ann01, ann03): left out until their "
        "files are there"
    ]
    notes = []
    nowhere = {"source": "folder", "folder": str(tmp_path / "nowhere"), "annotators": []}
    assert study.study_annotators(nowhere, crowd={}, notes=notes) == ([], [])
    assert notes == [
        "annotation stages off (masks, quality, fusion, evaluation, Table 1, figures): folder "
        f"'{tmp_path / 'nowhere'}' (annotations.folder) not found yet; they start once annotators' OpenLabeling "
        f"folders are in {tmp_path / 'nowhere'}/<annotator>/"
    ]


def test_the_simulated_crowd_needs_the_expert_label_of_every_annotated_case():
    study.check_simulated_crowd(annotated=["a", "b"], labelled=["a", "b", "c"])
    with pytest.raises(SamcrowdError) as e:
        study.check_simulated_crowd(annotated=["a", "b"], labelled=["a"])
    assert str(e.value) == (
        "the simulated crowd needs expert labels, case 'b' has none (give it a label or set annotations.source: folder)"
    )


def test_an_overlay_shows_the_chosen_case_or_the_first_one_it_may_show():
    figures = {"overlay_train_case": None, "overlay_test_case": "s2"}
    assert study.overlay_case(figures, kind="crowd", pool=["t1", "t2"]) == "t1"
    assert study.overlay_case(figures, kind="crowd", pool=[]) is None
    assert study.overlay_case(figures, kind="models", pool=["s1", "s2"]) == "s2"
    with pytest.raises(SamcrowdError) as e:
        study.overlay_case(figures, kind="models", pool=["s1"])
    assert str(e.value) == "config: key 'figures.overlay_test_case': 's2' is not one of ['s1']"


def test_an_overlay_case_outside_its_pool_stops_the_plan():
    with pytest.raises(SamcrowdError, match=r"config: key 'figures.overlay_train_case': '\w+' is not one of \["):
        study.plan(demo(figures={"overlay_train_case": study.plan(demo(), environ={}).test[0]}), environ={})


def test_the_checkpoint_is_the_configured_file_or_the_one_the_segmenter_ships():
    assert study.segmenter_checkpoint({"kind": "box", "checkpoint": "x.pth"}) is None
    assert study.segmenter_checkpoint({"kind": "random_walker", "checkpoint": ""}) is None
    assert study.segmenter_checkpoint({"kind": "sam", "checkpoint": "ckpt/sam.pth"}) == "ckpt/sam.pth"
    assert study.segmenter_checkpoint({"kind": "litemedsam", "checkpoint": "mine.pth"}) == "mine.pth"
    assert Path(study.segmenter_checkpoint({"kind": "litemedsam", "checkpoint": ""})).name == "lite_medsam.pth"


def test_batches_are_consecutive_runs_of_annotated_cases_and_appending_keeps_earlier_ones():
    cases = [f"c{i}" for i in range(7)]
    assert study.batches(cases, 3) == {
        "batch0001": ["c0", "c1", "c2"],
        "batch0002": ["c3", "c4", "c5"],
        "batch0003": ["c6"],
    }
    more = study.batches([*cases, "c7", "c8", "c9"], 3)
    assert more["batch0001"] == ["c0", "c1", "c2"] and more["batch0002"] == ["c3", "c4", "c5"]
    assert more["batch0003"] == ["c6", "c7", "c8"] and more["batch0004"] == ["c9"]
    assert study.batches([], 3) == {}
