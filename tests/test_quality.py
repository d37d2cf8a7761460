"""Annotator quality without an expert: the unreliable annotator of the default crowd comes last."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import ORGANS

from samcrowd import boxes, crowd, export, io, masks, quality, segmenters
from samcrowd.config import check_config
from samcrowd.fusion import Annotation
from samcrowd.openlabeling import PRESETS
from samcrowd.phantom import LABELS, PhantomSettings, make_case


@pytest.fixture(scope="module")
def default_crowd(tmp_path_factory):
    """Three phantom cases, the default simulated crowd, random-walker masks."""
    tmp = tmp_path_factory.mktemp("crowd")
    config = check_config({})
    settings = PhantomSettings.from_config(shape=(112, 112, 32))
    seg = segmenters.RandomWalkerSegmenter.from_config()
    tables, cases = [], {}
    for i, code in enumerate(["LAS", "RAS", "LPS"]):
        case = f"c{i}"
        image, label, affine = make_case(settings, i, code)
        io.save_volume(tmp / f"{case}.nii.gz", image, affine)
        io.save_volume(tmp / f"{case}_seg.nii.gz", label, affine)
        manifest = export.export_case(
            case=case,
            image_path=tmp / f"{case}.nii.gz",
            out_dir=tmp / case,
            manifest_path=tmp / f"{case}.json",
            **export.settings(),
        )
        frame = boxes.frame_from_manifest(manifest, PRESETS["project"])
        cases[case] = (frame.output, [])
        for name, profile in config["crowd"]["annotators"].items():
            folder = tmp / f"{case}-{name}"
            crowd.simulate_annotator(
                name=name,
                profile=crowd.Profile.from_config(config["crowd"]["profiles"][profile]),
                cases=[(tmp / f"{case}_seg.nii.gz", tmp / f"{case}.json")],
                organ_values={o: LABELS[o] for o in ORGANS},
                out_dir=folder,
                seed=0,
                formats=("yolo", "voc"),
            )
            table = boxes.annotator_table(folder, name, PRESETS["project"], ORGANS, {case: frame}.get)
            io.write_tsv(tmp / f"{case}-{name}.tsv", table)
            tables.append(table)
            masks.mask_case(
                segmenter=seg,
                annotator=name,
                table_path=tmp / f"{case}-{name}.tsv",
                manifest_path=tmp / f"{case}.json",
                slices_dir=tmp / case,
                image_path=tmp / f"{case}.nii.gz",
                organs=ORGANS,
                out_volume=tmp / f"{case}-{name}.nii.gz",
                out_coverage=tmp / f"{case}-{name}.cov.tsv",
            )
            cases[case][1].append(Annotation.load(name, tmp / f"{case}-{name}.nii.gz", tmp / f"{case}-{name}.cov.tsv"))
    return pd.concat(tables, ignore_index=True), cases


def test_the_unreliable_annotator_ranks_last_and_is_flagged(default_crowd):
    table_boxes, cases = default_crowd
    table = quality.annotator_quality(table_boxes, cases, ORGANS, method="majority", absent="background", threshold=0.6)
    assert table.annotator.iloc[-1] == "ann02"  # the default crowd's unreliable profile
    assert table.flagged.tolist() == [False, False, False, True]
    assert table["rank"].tolist() == [1, 2, 3, 4]
    for column in ("box_iou", "mask_dice_loo", "staple_sensitivity"):
        assert table.set_index("annotator")[column].idxmin() == "ann02", column
    assert (table.staple_specificity > 0.8).all()
    assert (table.box_pairs > 10).all() and (table.loo_slices > 10).all()


def test_box_iou_with_the_consensus_of_the_others():
    rows = [
        {"case": "c", "slice": 1, "organ": "liver", "annotator": n, "x0": x, "y0": 0, "x1": x + 10, "y1": 10}
        for n, x in (("a", 0), ("b", 0), ("c", 5))
    ]
    rows.append({"case": "c", "slice": 2, "organ": "liver", "annotator": "a", "x0": 0, "y0": 0, "x1": 4, "y1": 4})
    scores = quality.box_consensus_iou(pd.DataFrame(rows))
    assert scores["a"] == (pytest.approx(75 / 125), 1)  # the median of b and c spans x 2.5..12.5
    assert scores["c"][0] == pytest.approx(50 / 150)
    assert scores["a"][1] == 1  # the slice only a boxed has no consensus


def test_dropping_flagged_annotators_keeps_the_others_in_order(tmp_path):
    (tmp_path / "q.tsv").write_text("annotator\treliability\tflagged\nann01\t0.8\tFalse\nann02\t0.4\tTrue\n")
    assert quality.kept_annotators(quality_table=str(tmp_path / "q.tsv"), annotators=["ann02", "ann01", "ann03"]) == [
        "ann01",
        "ann03",
    ]
    (tmp_path / "all.tsv").write_text("annotator\treliability\tflagged\nann01\t0.1\tTrue\n")
    with pytest.raises(Exception, match="every annotator is flagged"):
        quality.kept_annotators(quality_table=str(tmp_path / "all.tsv"), annotators=["ann01"])
