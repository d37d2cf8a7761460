"""The simulated crowd: deterministic, independent per annotator and case, and noisy as configured."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import ORGANS

from samcrowd import crowd, export, io
from samcrowd.geometry import mask_bbox
from samcrowd.phantom import LABELS, PhantomSettings, make_case

ORGAN_VALUES = {o: LABELS[o] for o in ORGANS}
PERFECT = crowd.Profile(jitter_px=0, scale_bias=1, miss_rate=0, slice_fraction=1, wrong_class_rate=0)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crowd")
    image, label, affine = make_case(PhantomSettings.from_config(shape=(96, 88, 20)), 0, "RAS")
    io.save_volume(tmp / "c.nii.gz", image, affine)
    manifest = export.export_case(
        case="c",
        image_path=tmp / "c.nii.gz",
        out_dir=tmp / "png",
        manifest_path=tmp / "m.json",
        **export.settings(),
    )
    return label, manifest, export.SliceGeometry.from_dict(manifest["geometry"])


def draw(case, profile, seed=0, name="ann"):
    label, manifest, g = case
    return crowd.draw_case(label, manifest, g, ORGAN_VALUES, profile, crowd.stream(seed, name, "c"))


def iou(a, b):
    ix = max(0, min(a.x1, b.x1) - max(a.x0, b.x0))
    iy = max(0, min(a.y1, b.y1) - max(a.y0, b.y0))
    inter = ix * iy
    return inter / ((a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter)


def truth(case):
    label, manifest, g = case
    out = {}
    for r in manifest["slices"]:
        for organ, v in ORGAN_VALUES.items():
            box = mask_bbox(g.extract(label, r["slice"]) == v)
            if box and box[0][1] - box[0][0] >= 2 and box[1][1] - box[1][0] >= 2:
                (y0, y1), (x0, x1) = box
                out[(export.png_stem("c", r["slice"]), organ)] = crowd.Box(organ, x0, y0, x1, y1, 0)
    return out


def test_a_perfect_annotator_draws_the_tight_box_of_every_organ_on_every_slice(case):
    drawn = draw(case, PERFECT)
    assert len(drawn) == 20  # every exported slice opened
    got = {(stem, b.cls): b for stem, boxes in drawn.items() for b in boxes}
    assert got == truth(case)


def test_same_seed_same_boxes_and_annotators_are_independent(case):
    noisy = crowd.Profile(jitter_px=3, scale_bias=1.2, miss_rate=0.2, slice_fraction=0.5, wrong_class_rate=0.1)
    assert draw(case, noisy) == draw(case, noisy)
    assert draw(case, noisy, name="other") != draw(case, noisy)
    # an annotator's stream depends on its own name and case only, never on who else is simulated
    a = crowd.stream(0, "ann01", "c").random(5)
    assert np.array_equal(a, crowd.stream(0, "ann01", "c").random(5))
    assert not np.array_equal(a, crowd.stream(0, "ann01", "d").random(5))


def test_noise_profiles_behave_as_configured(case):
    t = truth(case)
    stats = {}
    for name, profile in {
        "careful": crowd.Profile(jitter_px=1, scale_bias=1, miss_rate=0.02, slice_fraction=0.3, wrong_class_rate=0),
        "unreliable": crowd.Profile(
            jitter_px=6, scale_bias=1.35, miss_rate=0.25, slice_fraction=0.3, wrong_class_rate=0.15
        ),
    }.items():
        opened, ious, wrong, present, boxed = 0, [], 0, 0, 0
        for seed in range(10):
            drawn = draw(case, profile, seed=seed)
            opened += len(drawn)
            for stem in drawn:
                organs_here = [o for (s, o) in t if s == stem]
                present += len(organs_here)
                boxed += len(drawn[stem])
                for b in drawn[stem]:
                    matches = [t[(stem, o)] for o in organs_here if iou(b, t[(stem, o)]) > 0.3]
                    best = max(matches, key=lambda m: iou(b, m), default=None)
                    if best is not None:
                        ious.append(iou(b, best))
                        wrong += best.cls != b.cls
        stats[name] = dict(
            fraction=opened / (10 * 20), iou=np.mean(ious), wrong=wrong / len(ious), missed=1 - boxed / present
        )
    careful, unreliable = stats["careful"], stats["unreliable"]
    assert 0.2 < careful["fraction"] < 0.4 and 0.2 < unreliable["fraction"] < 0.4
    assert careful["iou"] > 0.7 and unreliable["iou"] < careful["iou"] - 0.15  # small organs: 1 px matters
    assert careful["wrong"] == 0 and 0.05 < unreliable["wrong"] < 0.3
    assert careful["missed"] < 0.08 and unreliable["missed"] > 0.2  # misses, plus boxes jittered away


def test_per_organ_miss_rates_replace_the_default(case):
    profile = dataclasses.replace(PERFECT, miss_rate_by_organ={"aorta": 1.0})
    drawn = draw(case, profile)
    assert all(b.cls != "aorta" for boxes in drawn.values() for b in boxes)
    assert any(b.cls == "liver" for boxes in drawn.values() for b in boxes)


def test_a_stride_opens_the_first_and_every_nth_exported_slice_of_the_case(case):
    stems = [export.png_stem("c", r["slice"]) for r in case[1]["slices"]]
    every = draw(case, PERFECT)
    sparse = draw(case, dataclasses.replace(PERFECT, stride=3))
    assert sorted(sparse) == stems[::3]
    assert all(sparse[s] == every[s] for s in sparse)
    noisy = draw(case, crowd.Profile(jitter_px=3, scale_bias=1.1, miss_rate=0.1, slice_fraction=0.8, stride=3))
    assert noisy and all(stems.index(s) % 3 == 0 for s in noisy)  # slice_fraction of the every-3rd slices


def test_the_simulated_folder_is_what_openlabeling_writes(case, tmp_path):
    label, manifest, g = case
    io.save_volume(tmp_path / "seg.nii.gz", label, np.eye(4))
    io.write_json(tmp_path / "m.json", manifest)
    drawn = crowd.simulate_annotator(
        name="ann",
        profile=dataclasses.replace(PERFECT, slice_fraction=0.5),
        cases=[(tmp_path / "seg.nii.gz", tmp_path / "m.json")],
        organ_values=ORGAN_VALUES,
        out_dir=tmp_path / "ann",
        seed=0,
        formats=("yolo", "voc"),
    )
    assert (tmp_path / "ann/class_list.txt").read_text().split() == ORGANS
    assert sorted(p.stem for p in (tmp_path / "ann/YOLO_darknet").iterdir()) == sorted(drawn)
    assert sorted(p.stem for p in (tmp_path / "ann/PASCAL_VOC").iterdir()) == sorted(drawn)
