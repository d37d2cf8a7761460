"""A crowd campaign: the plan gives every slice to k annotators and gold slices to all, evenly and
reproducibly; packages open in OpenLabeling; returns are counted, refused or flagged against the plan."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import time
import zipfile
from contextlib import chdir

import numpy as np
import pandas as pd
import pytest
from conftest import ARTEFACTS, ORGANS, TINY, planned_jobs, snakemake, write_config

from samcrowd import boxes, campaign, crowd, io, openlabeling, quality, study
from samcrowd.errors import SamcrowdError
from samcrowd.openlabeling import MARKER, PRESETS, Box, write_class_list, write_yolo

ANNOTATORS = ["ann01", "ann02", "ann03", "ann04", "ann05"]


def slices(n_cases=3, n_slices=12, organs_from=2):
    """A candidate table: every slice from `organs_from` on shows an organ."""
    return pd.DataFrame(
        [
            {
                "case": f"c{c}",
                "slice": k,
                "stem": f"c{c}_{k:04d}",
                "organs": k >= organs_from,
                "n_organs": 2 * (k >= organs_from),
                "labelled": True,
            }
            for c in range(n_cases)
            for k in range(n_slices)
        ]
    )


def test_every_slice_goes_to_k_different_annotators_and_gold_to_everyone():
    table = campaign.plan(slices(), ANNOTATORS, k=2, gold=0.05, seed=0)
    assert list(table.columns) == campaign.ASSIGNMENT_COLUMNS
    per_slice = table.groupby("stem").annotator.agg(list)
    gold = set(table.stem[table.gold == "yes"])
    assert len(gold) == 2  # 5 % of 36 slices, rounded
    for stem, names in per_slice.items():
        assert len(set(names)) == len(names)  # never twice to one annotator
        assert len(names) == (5 if stem in gold else 2)
    assert all(int(stem[-4:]) >= 2 for stem in gold)  # gold only where the expert label shows an organ
    load = table[table.gold == "no"].groupby("annotator").size()
    assert load.sum() == 34 * 2 and load.max() - load.min() <= 1  # balanced within one slice


def test_the_plan_is_reproducible_from_its_seed_and_mixes_the_pairs():
    a = campaign.plan(slices(), ANNOTATORS, k=2, gold=0.05, seed=3)
    pd.testing.assert_frame_equal(a, campaign.plan(slices(), ANNOTATORS, k=2, gold=0.05, seed=3))
    assert not a.equals(campaign.plan(slices(), ANNOTATORS, k=2, gold=0.05, seed=4))
    pairs = a[a.gold == "no"].groupby("stem").annotator.agg(lambda s: tuple(sorted(s)))
    assert pairs.nunique() >= 8  # of the 10 possible pairs: annotators are compared with many others


def test_named_gold_slices_are_the_gold_slices():
    table = campaign.plan(slices(), ANNOTATORS, k=3, gold_slices=["c1_0005"], seed=0)
    assert set(table.stem[table.gold == "yes"]) == {"c1_0005"}
    assert set(table.groupby("stem").size()) == {3, 5}


def test_a_sparse_campaign_hands_out_each_cases_first_and_every_nth_chosen_slice_and_says_what_it_saves():
    chosen = slices(n_cases=2, n_slices=12).query("slice != 4")  # 'body': slice 4 not chosen
    table = campaign.plan(chosen, ANNOTATORS, k=2, gold=0.1, seed=0, stride=3)
    handed = table.groupby("case").slice.agg(lambda s: sorted(set(s))).to_dict()
    assert handed == {"c0": [0, 3, 7, 10], "c1": [0, 3, 7, 10]}  # every 3rd of the chosen 0-3, 5-11
    assert set(table.stem[table.gold == "yes"]) <= set(table.stem)  # gold among the handed-out slices
    assert campaign.sparse_summary(chosen, 3, 2) == (
        "every 3rd chosen slice handed out: 14 of 22 left to filling, 28 slice assignments (k = 2) and "
        "48 boxes saved (organs the expert labels show there)"
    )
    assert campaign.sparse_summary(chosen, 1, 2) == ""
    unlabelled = chosen.assign(labelled=False, organs=False, n_organs=0)
    assert campaign.sparse_summary(unlabelled, 2, 3) == (
        "every 2nd chosen slice handed out: 10 of 22 left to filling, 30 slice assignments (k = 3) saved"
    )
    with pytest.raises(SamcrowdError) as e:
        campaign.plan(chosen, ANNOTATORS, k=2, gold_slices=["c0_0005"], stride=3)
    assert str(e.value) == (
        "config: key 'campaign.gold_slices': 'c0_0005' is not a handed-out slice whose expert label shows an organ "
        "(campaign.stride 3 hands out every 3rd slice)"
    )


def test_strides_are_named_as_ordinals():
    assert [campaign.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th"
    ]  # fmt: skip


def test_the_sheet_of_a_sparse_campaign_says_the_skipped_slices_are_meant():
    sparse = campaign.instructions_html([], ORGANS, stride=5)
    assert "You get only every 5th slice of each scan" in sparse and "<b>that is meant</b>" in sparse
    assert 'class="sparse"' not in campaign.instructions_html([], ORGANS)


@pytest.mark.parametrize(
    "kwargs, candidates, message",
    [
        (
            {"k": 6},
            slices(),
            "config: key 'campaign.k': 6 annotators per slice, but the campaign has only 5 "
            "(ann01, ann02, ann03, ann04, ann05)",
        ),
        (
            {"k": 2, "gold": 0.05},
            slices(organs_from=99),
            "config: key 'campaign.gold': a gold fraction (0.05) needs expert labels showing organs on the "
            "handed-out slices; none has one",
        ),
        (
            {"k": 2, "gold_slices": ["c0_0000"]},
            slices(),
            "config: key 'campaign.gold_slices': 'c0_0000' is not a handed-out slice whose expert label shows an organ",
        ),
    ],
)
def test_an_impossible_plan_is_one_line(kwargs, candidates, message):
    with pytest.raises(SamcrowdError) as e:
        campaign.plan(candidates, ANNOTATORS, **kwargs)
    assert str(e.value) == message


def test_a_plan_that_leaves_an_annotator_without_a_slice_is_refused():
    with pytest.raises(SamcrowdError) as e:
        campaign.plan(slices(n_cases=1, n_slices=2), ANNOTATORS, k=2)
    assert str(e.value) == (
        "campaign: 2 slices x k = 2 leave 1 of the 5 annotators without a slice; raise campaign.k, add gold "
        "slices or hand out more slices"
    )
    with_gold = campaign.plan(slices(n_cases=1, n_slices=4), ANNOTATORS, k=1, gold_slices=["c0_0003"])
    assert set(with_gold.annotator) == set(ANNOTATORS)  # everyone has the gold slice


def test_a_campaign_plan_needs_named_annotators_and_the_projects_own_slice_names():
    settings = {"k": 2, "gold": 0, "gold_slices": []}
    folder = {"source": "folder", "folder": "annotations", "annotators": [], "naming": "project"}
    with pytest.raises(SamcrowdError, match="campaign.plan needs the annotators to plan for; list them"):
        study.check_campaign(settings, folder, [], labelled=[])
    named = {**folder, "annotators": ANNOTATORS, "naming": "med2image"}
    with pytest.raises(SamcrowdError) as e:
        study.check_campaign(settings, named, ANNOTATORS, labelled=[])
    assert str(e.value) == (
        "config: key 'annotations.naming': a campaign plan hands out samcrowd's own slices "
        "({case}_{slice:04d}.png); 'med2image' names would not match them (use project)"
    )


def test_an_annotator_whose_folder_holds_no_annotation_file_yet_is_still_out(tmp_path):
    (tmp_path / "ann01").mkdir()  # created, nothing in it
    package = tmp_path / "ann02"  # the package sent back before OpenLabeling ran
    (package / "input").mkdir(parents=True)
    (package / "input/c0_0001.png").write_bytes(b"png")
    for name in ("class_list.txt", "slices.txt", "instructions.html"):
        (package / name).write_text("x\n")
    write_folder(tmp_path / "ann03", {"c0_0001": [Box("liver", 5, 5, 20, 20, 0)]})
    assert [openlabeling.has_returns(tmp_path / a) for a in ("ann01", "ann02", "ann03")] == [False, False, True]
    notes = []
    annotations = {"source": "folder", "folder": str(tmp_path), "annotators": ["ann01", "ann02", "ann03"]}
    assert study.study_annotators(annotations, crowd={}, notes=notes) == (["ann01", "ann02", "ann03"], ["ann03"])
    assert notes == [
        f"waiting for 2 annotator(s) with no files in '{tmp_path}' yet (ann01, ann02): left out until their files "
        "are there"
    ]


def test_gold_without_any_expert_label_is_refused_before_a_slice_is_read():
    settings = {"k": 2, "gold": 0.05, "gold_slices": []}
    with pytest.raises(SamcrowdError) as e:
        campaign.check_settings(settings, ANNOTATORS, has_labels=False)
    assert str(e.value) == (
        "config: key 'campaign.gold': gold slices need expert labels, and no annotated case has one "
        "(set campaign.gold: 0)"
    )
    campaign.check_settings({**settings, "gold": 0}, ANNOTATORS, has_labels=False)


def box_table(rows):
    return boxes.to_frame(
        [dict(zip(["case", "annotator", "organ", "slice", "x0", "y0", "x1", "y1", "file"], r)) for r in rows], ORGANS
    )


def test_files_for_unassigned_slices_are_refused_or_flagged(caplog):
    table = box_table(
        [
            ("c0", "ann01", "liver", 3, 1, 1, 9, 9, "YOLO_darknet/c0_0003.txt"),
            ("c0", "ann01", "spleen", 4, 1, 1, 9, 9, "YOLO_darknet/c0_0004.txt"),
        ]
    )
    with pytest.raises(SamcrowdError) as e:
        campaign.check_assigned(table, {("c0", 3)}, "refuse", "annotations/ann01", "ann01")
    assert str(e.value) == (
        "annotations/ann01/YOLO_darknet/c0_0004.txt: slice 4 of case 'c0' was not assigned to ann01 "
        "(campaign.unassigned: refuse; flag keeps such files)"
    )
    with caplog.at_level(logging.WARNING):
        kept = campaign.check_assigned(table, {("c0", 3)}, "flag", "annotations/ann01", "ann01")
    assert kept.equals(table)
    assert "1 file(s) for slices not assigned to ann01 kept, flagged (campaign.unassigned: flag)" in caplog.text


def write_folder(folder, files, classes=(*ORGANS, MARKER)):
    """An OpenLabeling folder: {stem: [Box]} written as YOLO files (an empty list: an empty file)."""
    (folder / "YOLO_darknet").mkdir(parents=True)
    write_class_list(folder / "class_list.txt", list(classes))
    for stem, drawn in files.items():
        write_yolo(folder / "YOLO_darknet" / f"{stem}.txt", drawn, list(classes), 40, 30)


def frame():
    from samcrowd.geometry import SliceGeometry

    geometry = SliceGeometry(shape=(40, 30, 12), slice_axis=2, row_axis=1, row_flip=False, col_axis=0, col_flip=False)
    return boxes.CaseFrame(geometry, geometry, frozenset(range(12)))


def test_in_a_package_an_empty_file_is_not_done_and_the_marker_means_seen_nothing_there(tmp_path):
    write_folder(
        tmp_path / "ann01",
        {
            "c0_0001": [],  # OpenLabeling's own empty file: never opened
            "c0_0002": [Box(MARKER, 0, 0, 8, 8, 0)],  # seen, nothing there
            "c0_0003": [Box("liver", 5, 5, 20, 20, 0)],
        },
    )
    table = boxes.annotator_table(tmp_path / "ann01", "ann01", PRESETS["project"], ORGANS, {"c0": frame()}.get)
    assert list(zip(table.slice, table.organ)) == [(2, ""), (3, "liver")]
    write_folder(tmp_path / "old", {"c0_0001": []}, classes=ORGANS)  # no marker class: empty means seen
    table = boxes.annotator_table(tmp_path / "old", "old", PRESETS["project"], ORGANS, {"c0": frame()}.get)
    assert list(zip(table.slice, table.organ)) == [(1, "")]


def test_a_package_sent_back_whole_is_read_from_its_output_folder(tmp_path):
    package = tmp_path / "ann01"
    (package / "input").mkdir(parents=True)
    (package / "input/c0_0003.png").write_bytes(b"png")
    (package / "instructions.html").write_text("<html></html>")
    write_folder(package / "output", {"c0_0003": [Box("liver", 5, 5, 20, 20, 0)]})
    (package / "output/class_list.txt").rename(package / "class_list.txt")
    table = boxes.annotator_table(package, "ann01", PRESETS["project"], ORGANS, {"c0": frame()}.get)
    assert list(table.file) == ["output/YOLO_darknet/c0_0003.txt"]


def test_the_returned_files_fingerprint_changes_only_for_the_case_that_got_new_files(tmp_path):
    folder = tmp_path / "ann01"
    write_folder(folder, {"c0_0001": [Box("liver", 5, 5, 20, 20, 0)], "c1_0001": []})
    before = openlabeling.returned_files(folder, PRESETS["project"])
    assert set(before) == {"", "c0", "c1"}
    write_yolo(folder / "YOLO_darknet/c1_0002.txt", [Box("liver", 5, 5, 20, 20, 0)], ORGANS, 40, 30)
    after = openlabeling.returned_files(folder, PRESETS["project"])
    assert after["c0"] == before["c0"] and after[""] == before[""] and after["c1"] != before["c1"]


def test_gold_agreement_is_box_iou_with_the_expert_and_a_miss_or_an_extra_box_counts_zero():
    expert = pd.DataFrame(
        [("c0", 5, "liver", 0, 0, 10, 10), ("c0", 5, "spleen", 20, 0, 30, 10)],
        columns=["case", "slice", "organ", "x0", "y0", "x1", "y1"],
    )
    table = box_table(
        [
            ("c0", "ann01", "liver", 5, 0, 0, 10, 10, "f"),
            ("c0", "ann01", "spleen", 5, 20, 0, 30, 10, "f"),
            ("c0", "ann02", "liver", 5, 0, 0, 10, 5, "f"),  # half the liver, spleen missed
            ("c0", "ann02", "aorta", 5, 12, 0, 14, 2, "f"),  # and an aorta the expert does not have
            ("c0", "ann03", "liver", 7, 0, 0, 10, 10, "f"),  # not a gold slice
        ]
    )
    agreement = quality.gold_agreement(table, expert)
    assert agreement == {"ann01": (1.0, 1), "ann02": (pytest.approx(0.5 / 3), 1)}


def test_status_counts_assigned_done_boxes_votes_and_refusals():
    assignment = campaign.plan(slices(n_cases=1, n_slices=6), ANNOTATORS[:3], k=2, gold_slices=["c0_0005"], seed=0)
    own = {a: sorted(campaign.assigned_slices(assignment, a)) for a in ANNOTATORS[:3]}
    expert = pd.DataFrame(
        [("c0", 5, "liver", 0, 0, 10, 10)], columns=["case", "slice", "organ", "x0", "y0", "x1", "y1"]
    )
    rows = [("c0", "ann01", "liver", k, 0, 0, 10, 10, f"YOLO_darknet/c0_{k:04d}.txt") for _, k in own["ann01"]]
    unassigned = next(k for k in range(5) if ("c0", k) not in own["ann02"])
    returns = {
        "ann01": box_table(rows),  # everything, with a perfect gold box
        "ann02": box_table([("c0", "ann02", "", unassigned, None, None, None, None, "x.txt")]),  # one stray file
        "ann03": None,  # nothing back yet
    }
    table, coverage = campaign.status(assignment, returns, k=2, policy="flag", expert=expert)
    row = table.set_index("annotator")
    assert row.loc["ann01", ["assigned", "done", "waiting", "boxes", "gold_done"]].tolist() == [
        len(own["ann01"]),
        len(own["ann01"]),
        0,
        len(own["ann01"]),
        1,
    ]
    assert row.loc["ann01", "gold_iou"] == 1.0
    assert row.loc["ann02", ["done", "unassigned", "refused"]].tolist() == [0, 1, 0]
    assert row.loc["ann03", ["done", "waiting"]].tolist() == [0, len(own["ann03"])]
    # only ann01 has returned: each of its slices has one vote, the others none
    assert coverage.set_index("votes").returned.to_dict() == {
        0: 6 - len(own["ann01"]),
        1: len(own["ann01"]),
        2: 0,
        3: 0,
    }
    assert coverage.set_index("votes").planned.to_dict() == {0: 0, 1: 0, 2: 5, 3: 1}
    assert row.loc["ann03", "below_k"] == len([c for c in own["ann03"] if c != ("c0", 5)])
    refused, _ = campaign.status(assignment, returns, k=2, policy="refuse", expert=expert)
    assert refused.set_index("annotator").loc["ann02", ["refused", "reason"]].tolist() == [
        1,
        f"x.txt: slice {unassigned} of case 'c0' was not assigned",
    ]


def test_a_package_holds_the_assigned_slices_the_class_list_with_the_marker_and_the_sheet(tmp_path):
    from PIL import Image

    assignment = campaign.plan(slices(n_cases=1, n_slices=6), ANNOTATORS[:3], k=2, seed=0)
    (tmp_path / "slices").mkdir()
    for k in range(6):
        Image.fromarray(np.full((30, 40), k, np.uint8)).save(tmp_path / f"slices/c0_{k:04d}.png")
    (tmp_path / "sheet.html").write_text("<html>sheet</html>")

    def package(name):
        return campaign.write_package(
            annotator="ann02",
            assignment=assignment,
            slices_dirs={"c0": tmp_path / "slices"},
            organs=ORGANS,
            instructions=tmp_path / "sheet.html",
            out_dir=tmp_path / name,
            zip_path=tmp_path / f"{name}.zip",
        )

    n = package("ann02")
    stems = sorted(assignment.stem[assignment.annotator == "ann02"])
    assert n == len(stems) and sorted(p.stem for p in (tmp_path / "ann02/input").iterdir()) == stems
    assert openlabeling.read_class_list(tmp_path / "ann02/class_list.txt") == [*ORGANS, MARKER]
    assert (tmp_path / "ann02/slices.txt").read_text().split() == stems
    with zipfile.ZipFile(tmp_path / "ann02.zip") as z:
        assert sorted(z.namelist()) == sorted(
            ["ann02/class_list.txt", "ann02/instructions.html", "ann02/slices.txt"]
            + [f"ann02/input/{s}.png" for s in stems]
        )
    package("again")
    assert (tmp_path / "again.zip").read_bytes() == (
        tmp_path / "ann02.zip"
    ).read_bytes()  # the same package zips to the same bytes


# ---- the campaign through the workflow --------------------------------------------------------

CAMPAIGN = """
phantom: {n_train: 3, n_test: 1, shape: [48, 40, 12], orientations: [RAS, LPS, LAS]}
segmenter: {kind: random_walker}
nnunet: {sources: []}
annotations: {source: folder, folder: annotations, annotators: [ann01, ann02, ann03, ann04, ann05]}
campaign: {plan: true, k: 2, gold: 0.05, zip: true}
"""
ORGAN_VALUES = {"spleen": 1, "right_kidney": 2, "left_kidney": 3, "liver": 6, "aorta": 8}


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A campaign planned and handed out: export, plan, instruction sheet, packages; nobody back yet."""
    work = tmp_path_factory.mktemp("campaign")
    write_config(work / "c.yaml", CAMPAIGN)
    run = snakemake(work, "--cores", "2", "--configfile", "c.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    return work, run


def simulate_returns(work, out):
    """What each annotator would send back for all its assigned slices (the crowd simulator, careful)."""
    plan = campaign.read_assignment(work / "results/campaign/assignment.tsv")
    cases = [(f"results/data/labels/{c}.nii.gz", f"results/slices/{c}.manifest.json") for c in sorted(set(plan.case))]
    with chdir(work):
        for name in ANNOTATORS:
            crowd.simulate_annotator(
                name=name,
                profile=crowd.Profile(jitter_px=1.0),
                cases=cases,
                organ_values=ORGAN_VALUES,
                out_dir=out / name,
                seed=0,
                formats=("yolo", "voc"),
                assigned=campaign.assigned_slices(plan, name),
            )


def give_back(full, work, name, stems):
    """Copy an annotator's files for `stems` into its returned folder, as a partial return does."""
    target = work / "annotations" / name
    (target / "YOLO_darknet").mkdir(parents=True, exist_ok=True)
    (target / "PASCAL_VOC").mkdir(exist_ok=True)
    shutil.copyfile(full / name / "class_list.txt", target / "class_list.txt")
    for stem in stems:
        shutil.copyfile(full / name / f"YOLO_darknet/{stem}.txt", target / f"YOLO_darknet/{stem}.txt")
        shutil.copyfile(full / name / f"PASCAL_VOC/{stem}.xml", target / f"PASCAL_VOC/{stem}.xml")


def samcrowd_cli(work, *args):
    """The `samcrowd` command, run in the project folder."""
    return subprocess.run([sys.executable, "-m", "samcrowd.cli", *args], cwd=work, capture_output=True, text=True)


def status_cli(work, configfile="c.yaml", annotators=ANNOTATORS):
    """`samcrowd campaign status` in the project: {annotator: row} and the summary line."""
    run = samcrowd_cli(work, "campaign", "status", "--configfile", configfile)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    header = lines[0].split()
    rows = {}
    for line in lines[1 : 1 + len(annotators)]:
        fields = line.split(maxsplit=len(header) - 1)
        rows[fields[0]] = dict(zip(header, fields))
    return rows, lines[-1]


def expected_status(plan, returned, full):
    """Status figures worked out here from the plan and the files handed back."""
    gold = set(plan.stem[plan.gold == "yes"])
    votes = {s: sum(s in returned.get(a, ()) for a in ANNOTATORS) for s in set(plan.stem)}
    out = {}
    for a in ANNOTATORS:
        own = set(plan.stem[plan.annotator == a])
        done = set(returned.get(a, ()))
        boxes = sum(
            1
            for s in done
            for line in (full / a / f"YOLO_darknet/{s}.txt").read_text().splitlines()
            if int(line.split()[0]) < len(ORGAN_VALUES)  # not the nothing_here marker
        )
        out[a] = {
            "assigned": len(own),
            "done": len(done),
            "boxes": boxes,
            "waiting": len(own - done),
            "below_k": len({s for s in own - gold if votes[s] < 2}),
            "gold_done": len(done & gold),
        }
    return out


@pytest.mark.workflow
def test_a_campaign_plans_hands_out_collects_and_reruns_only_the_new_work(planned, tmp_path):
    work, first = planned
    assert "samcrowd: annotation stages off" in first.stderr
    plan = campaign.read_assignment(work / "results/campaign/assignment.tsv")
    assert plan.stem.nunique() == 36 and plan[plan.gold == "yes"].stem.nunique() == 2  # 3 cases x 12 slices, 5 %
    for name in ANNOTATORS:
        package = work / "results/campaign/packages" / name
        assert sorted(p.stem for p in (package / "input").iterdir()) == sorted(plan.stem[plan.annotator == name])
        assert openlabeling.read_class_list(package / "class_list.txt") == [*ORGAN_VALUES, MARKER]
        assert (package / "instructions.html").read_bytes() == (
            work / "results/campaign/instructions.html"
        ).read_bytes()
        assert zipfile.ZipFile(work / f"results/campaign/packages/{name}.zip").testzip() is None
    assert not (work / "results/masks").exists()
    cli = samcrowd_cli(work, "campaign", "plan", "--configfile", "c.yaml", "-o", "cli.tsv")
    assert cli.returncode == 0, cli.stderr
    assert cli.stderr == "cli.tsv: campaign plan: 36 slices (2 gold) to 5 annotators, k = 2; 15 to 16 slices each\n"
    assert (work / "cli.tsv").read_bytes() == (work / "results/campaign/assignment.tsv").read_bytes()
    write_config(work / "k6.yaml", "campaign: {k: 6}\n")
    cli = samcrowd_cli(work, "campaign", "plan", "--configfile", "c.yaml", "--configfile", "k6.yaml", "-o", "k6.tsv")
    assert cli.returncode == 2 and not (work / "k6.tsv").exists()
    assert cli.stderr == (
        "samcrowd: error: config: key 'campaign.k': 6 annotators per slice, but the campaign has only 5 "
        "(ann01, ann02, ann03, ann04, ann05)\n"
    )

    full = tmp_path / "full"
    simulate_returns(work, full)
    own = {a: sorted(plan.stem[plan.annotator == a]) for a in ANNOTATORS}
    returned = {"ann01": own["ann01"][: len(own["ann01"]) // 2], "ann02": own["ann02"], "ann03": own["ann03"]}
    for name, stems in returned.items():
        give_back(full, work, name, stems)
    rows, line = status_cli(work)
    for name, figures in expected_status(plan, returned, full).items():
        assert {k: int(rows[name][k]) for k in figures} == figures, name
    assert rows["ann02"]["gold_iou"] != "-" and rows["ann04"]["gold_iou"] == "-"
    done = sum(len(s) for s in returned.values())
    assert line.startswith(f"campaign: 36 slices (2 gold), 5 annotators, k = 2: {done} of {len(plan)} assignments done")

    second = snakemake(work, "--cores", "2", "--configfile", "c.yaml")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "samcrowd: waiting for 2 annotator(s) with no files in 'annotations' yet (ann04, ann05)" in second.stderr
    quality_table = pd.read_csv(work / "results/quality/annotators.tsv", sep="\t").set_index("annotator")
    assert sorted(quality_table.index) == ["ann01", "ann02", "ann03"]
    assert quality_table.loc["ann02", "basis"] == "gold" and quality_table.loc["ann02", "gold_slices"] == 2
    status_table = pd.read_csv(work / "results/campaign/status.tsv", sep="\t").set_index("annotator")
    assert status_table.done.to_dict() == {a: len(returned.get(a, ())) for a in ANNOTATORS}

    give_back(full, work, "ann01", own["ann01"])  # the rest, into the folders already there
    give_back(full, work, "ann04", own["ann04"])
    give_back(full, work, "ann05", own["ann05"])
    dry = snakemake(work, "-n", "--configfile", "c.yaml")
    assert dry.returncode == 0, dry.stderr
    assert planned_jobs(dry) == {
        "masks": 3,
        "quality": 1,
        "fuse": 3,
        "evaluate_case": 3,
        "evaluate": 1,
        "stats": 1,
        "figure_annotation_dice": 1,
        "figure_annotators": 1,
        "figure_overlay": 1,
        "campaign_status": 1,
        "all": 1,
    }  # no export, plan, package, and no masks job of ann02 or ann03
    assert sorted(re.findall(r"output: results/masks/(ann\d+)/batch0001", dry.stdout)) == ["ann01", "ann04", "ann05"]
    third = snakemake(work, "--cores", "2", "--configfile", "c.yaml")
    assert third.returncode == 0, third.stderr[-3000:]
    coverage = pd.read_csv(work / "results/campaign/coverage.tsv", sep="\t").set_index("votes")
    assert coverage.returned.to_dict() == coverage.planned.to_dict() == {0: 0, 1: 0, 2: 34, 3: 0, 4: 0, 5: 2}
    report = snakemake(work, "--report", "results/report.html", "--configfile", "c.yaml")
    assert report.returncode == 0, report.stderr[-2000:]
    html = (work / "results/report.html").read_text()
    assert "1. Campaign" in html and "results/campaign/status.tsv" in html and "results/campaign/coverage.tsv" in html

    # a file for a slice ann02 was not given: refused by default, flagged on request
    stray = next(s for s in sorted(set(plan.stem)) if s not in own["ann02"])
    shutil.copyfile(
        work / f"annotations/ann02/YOLO_darknet/{own['ann02'][0]}.txt",
        work / f"annotations/ann02/YOLO_darknet/{stray}.txt",
    )
    refused = snakemake(work, "--cores", "2", "--configfile", "c.yaml")
    assert refused.returncode != 0
    message = (
        f"annotations/ann02/YOLO_darknet/{stray}.txt: slice {int(stray[-4:])} of case '{stray[:-5]}' was not "
        "assigned to ann02 (campaign.unassigned: refuse; flag keeps such files)"
    )
    assert message in refused.stderr
    assert not (work / "results/masks/ann02/batch0001").exists()
    write_config(work / "flag.yaml", "campaign: {unassigned: flag}\n")
    dry = snakemake(work, "-n", "--configfile", "c.yaml", "flag.yaml")
    jobs = planned_jobs(dry)
    assert jobs["masks"] == 5  # the policy is a setting of every masks job
    assert not {"export_slices", "campaign_plan", "campaign_instructions", "campaign_package"} & set(jobs)  # no re-plan
    flagged = snakemake(work, "--cores", "2", "--configfile", "c.yaml", "flag.yaml")
    assert flagged.returncode == 0, flagged.stderr[-3000:]
    status_table = pd.read_csv(work / "results/campaign/status.tsv", sep="\t").set_index("annotator")
    assert status_table.loc["ann02", "unassigned"] == 1 and status_table.unassigned.sum() == 1
    assert (
        "1 file(s) for slices not assigned to ann02 kept, flagged"
        in (work / "results/logs/masks/ann02/batch0001.log").read_text()
    )
    again = snakemake(work, "-n", "--configfile", "c.yaml", "flag.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.workflow
def test_a_sparse_simulated_campaign_boxes_exactly_its_slices_fills_the_rest_and_a_second_run_has_nothing_to_do(
    tmp_path,
):
    cfg = write_config(tmp_path / "c.yaml", TINY + "campaign: {plan: true, k: 2, gold: 0.1, stride: 2}\n")
    run = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    plan = campaign.read_assignment(tmp_path / "results/campaign/assignment.tsv")
    for case, handed in plan.groupby("case").slice.agg(lambda s: sorted(set(s))).items():
        exported = [r["slice"] for r in io.read_json(tmp_path / f"results/slices/{case}.manifest.json")["slices"]]
        assert handed == exported[::2], case
    line = (tmp_path / "results/logs/campaign/status.log").read_text()
    assert "every 2nd chosen slice handed out: " in line and " left to filling, " in line
    assert "every 2nd slice of each scan" in (tmp_path / "results/campaign/instructions.html").read_text()
    for case in plan.case.unique():
        fused = pd.read_csv(tmp_path / f"results/labels/fusion/{case}.tsv", sep="\t")
        assert {"between"} <= set(fused.filled)  # the slices in between were filled by the segmenter
        sparse = io.load_volume(tmp_path / f"results/labels/sparse/{case}.nii.gz")[0]
        stacked = io.load_volume(tmp_path / f"results/labels/stacked/{case}.nii.gz")[0]
        crowd_labels = io.load_volume(tmp_path / f"results/labels/crowd/{case}.nii.gz")[0]
        ignored = sparse == len(ORGANS) + 1  # nnU-Net's ignore label on the slices nobody voted on
        assert ignored.any() and (stacked[~ignored] == sparse[~ignored]).all()
        assert (crowd_labels[ignored] > 0).sum() > (stacked[ignored] > 0).sum()
    simulated = ["ann01", "ann02", "ann03", "ann04"]
    for name in simulated:
        folder = tmp_path / "results/annotations" / name
        assert sorted(p.stem for p in (folder / "YOLO_darknet").iterdir()) == sorted(plan.stem[plan.annotator == name])
    status_table = pd.read_csv(tmp_path / "results/campaign/status.tsv", sep="\t")
    assert (status_table.done == status_table.assigned).all() and (status_table.below_k == 0).all()
    rows, _ = status_cli(tmp_path, "c.yaml", simulated)
    assert all(rows[a]["done"] == rows[a]["assigned"] for a in simulated), rows
    quality_table = pd.read_csv(tmp_path / "results/quality/annotators.tsv", sep="\t")
    assert set(quality_table.basis) == {"gold"}
    again = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.workflow
def test_the_instruction_sheet_shows_an_example_box_per_organ_in_chromium(planned, browser):
    from PIL import Image
    from selenium.webdriver.common.by import By

    work, _ = planned
    browser.set_window_size(1400, 2400)
    browser.get((work / "results/campaign/instructions.html").as_uri())
    time.sleep(1)
    images = browser.find_elements(By.TAG_NAME, "img")
    assert [i.get_attribute("alt") for i in images] == [f"example box: {o.replace('_', ' ')}" for o in ORGAN_VALUES]
    assert all(
        browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i) > 0 for i in images
    )
    assert all(i.is_displayed() and i.size["width"] > 100 for i in images)
    assert "nothing_here" in browser.find_element(By.TAG_NAME, "body").text
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "campaign_instructions.png"
    browser.save_screenshot(str(shot))
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    for colour in campaign.COLOURS[: len(ORGAN_VALUES)]:  # every organ's box colour is on screen
        assert (np.abs(pixels - colour).sum(axis=1) < 30).sum() > 50, colour
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe


@pytest.mark.workflow
def test_export_alone_runs_on_a_sheet_without_annotations_or_test_split_and_says_what_is_off(tmp_path):
    (tmp_path / "data").mkdir()
    affine = np.diag([-0.8, 0.8, 3.0, 1.0])
    for case in ("a", "b"):
        io.save_volume(tmp_path / f"data/{case}.nii.gz", np.full((16, 16, 6), 40, np.int16), affine)
    (tmp_path / "cases.tsv").write_text(
        "case\timage\tlabel\tsplit\na\tdata/a.nii.gz\t\ttrain\nb\tdata/b.nii.gz\t\ttrain\n"
    )
    cfg = write_config(tmp_path / "c.yaml", "data: {source: sheet, sheet: cases.tsv}\nannotations: {source: folder}\n")
    run = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "results/slices").glob("*.manifest.json")) == [
        "a.manifest.json",
        "b.manifest.json",
    ]
    assert len(list((tmp_path / "results/slices/a").glob("*.png"))) == 6
    assert (
        "samcrowd: annotation stages off (masks, quality, fusion, evaluation, Table 1, figures): folder "
        "'annotations' (annotations.folder) not found yet; they start once annotators' OpenLabeling folders are "
        "in annotations/<annotator>/"
    ) in run.stderr
    assert (
        "samcrowd: nnU-Net stage off: the case sheet has no test case with an expert label (split test); add some "
        "to switch it on, or set nnunet.sources: [] to say it is off"
    ) in run.stderr
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["benchmarks", "data", "logs", "slices"]


@pytest.mark.workflow
@pytest.mark.parametrize(
    "extra, labelled, message",
    [
        (
            "campaign: {plan: true, k: 6}",
            True,
            "config: key 'campaign.k': 6 annotators per slice, but the campaign has only 5 "
            "(ann01, ann02, ann03, ann04, ann05)",
        ),
        (
            "campaign: {plan: true, gold: 0.05}",
            False,
            "config: key 'campaign.gold': gold slices need expert labels, and no annotated case has one "
            "(set campaign.gold: 0)",
        ),
    ],
)
def test_an_impossible_campaign_stops_before_any_job_with_one_line(tmp_path, extra, labelled, message):
    (tmp_path / "data").mkdir()
    affine = np.diag([-0.8, 0.8, 3.0, 1.0])
    io.save_volume(tmp_path / "data/a.nii.gz", np.full((16, 16, 6), 40, np.int16), affine)
    io.save_volume(tmp_path / "data/a_seg.nii.gz", np.zeros((16, 16, 6), np.uint8), affine)
    label = "data/a_seg.nii.gz" if labelled else ""
    (tmp_path / "cases.tsv").write_text(f"case\timage\tlabel\tsplit\na\tdata/a.nii.gz\t{label}\ttrain\n")
    cfg = write_config(
        tmp_path / "c.yaml",
        "data: {source: sheet, sheet: cases.tsv}\nnnunet: {sources: []}\n"
        "annotations: {source: folder, annotators: [ann01, ann02, ann03, ann04, ann05]}\n" + extra + "\n",
    )
    run = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert run.returncode != 0
    assert message in run.stderr
    assert [line for line in run.stderr.splitlines() if message in line] == [message]
    assert not (tmp_path / "results").exists()
