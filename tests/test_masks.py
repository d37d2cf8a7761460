"""From boxes to label volumes: one encoder pass per slice, exact grids, the box segmenter as a
geometry check in every orientation, overlaps resolved by score."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from conftest import ORGANS, sam_settings

from samcrowd import boxes, crowd, export, io, masks, segmenters
from samcrowd.errors import SamcrowdError
from samcrowd.geometry import mask_bbox
from samcrowd.openlabeling import PRESETS
from samcrowd.phantom import LABELS, PhantomSettings, make_case

PERFECT = crowd.Profile(jitter_px=0, scale_bias=1, miss_rate=0, slice_fraction=1, wrong_class_rate=0)
NOISY = crowd.Profile(jitter_px=2, scale_bias=1.1, miss_rate=0.1, slice_fraction=0.5, wrong_class_rate=0.05)


def prepare_case(tmp, code, organs=ORGANS, profiles=(PERFECT,), shape=(64, 56, 10)):
    """A phantom case stored in `code`, exported, with one box table per annotator profile."""
    image, label, affine = make_case(PhantomSettings.from_config(shape=shape), 0, code)
    io.save_volume(tmp / "img.nii.gz", image, affine)
    io.save_volume(tmp / "seg.nii.gz", label, affine)
    manifest = export.export_case(
        case="c",
        image_path=tmp / "img.nii.gz",
        out_dir=tmp / "png",
        manifest_path=tmp / "c.manifest.json",
        **export.settings(),
    )
    values = {o: LABELS[o] for o in organs}
    frame = boxes.frame_from_manifest(manifest, PRESETS["project"])
    tables = []
    for i, profile in enumerate(profiles):
        folder = tmp / f"ann{i}"
        crowd.simulate_annotator(
            name=f"ann{i}",
            profile=profile,
            cases=[(tmp / "seg.nii.gz", tmp / "c.manifest.json")],
            organ_values=values,
            out_dir=folder,
            seed=0,
            formats=("yolo", "voc"),
        )
        table = boxes.annotator_table(folder, f"ann{i}", PRESETS["project"], list(organs), {"c": frame}.get)
        io.write_tsv(tmp / f"ann{i}.tsv", table)
        tables.append(tmp / f"ann{i}.tsv")
    return label, tables


def run_masks(tmp, segmenter, table, organs=ORGANS, embeddings=None, name="ann0"):
    return masks.mask_case(
        segmenter=segmenter,
        annotator=name,
        table_path=table,
        manifest_path=tmp / "c.manifest.json",
        slices_dir=tmp / "png",
        image_path=tmp / "img.nii.gz",
        organs=list(organs),
        out_volume=tmp / f"{name}.nii.gz",
        out_coverage=tmp / f"{name}.coverage.tsv",
        embeddings=embeddings,
    )


def gt_box_union(label, value, slice_axis):
    """Union over slices of the ground-truth bounding box of one organ (slivers < 2 px skipped)."""
    out = np.zeros(label.shape, dtype=bool)
    for k in range(label.shape[slice_axis]):
        index = [slice(None)] * 3
        index[slice_axis] = k
        plane = label[tuple(index)] == value
        bb = mask_bbox(plane)
        if bb and min(b - a for a, b in bb) >= 2:
            sub = np.zeros_like(plane)
            sub[bb[0][0] : bb[0][1], bb[1][0] : bb[1][1]] = True
            out[tuple(index)] = sub
    return out


@pytest.mark.parametrize("code", ["LAS", "RAS", "LPS", "PIR", "SAL"])
@pytest.mark.parametrize("organ", ORGANS)
def test_box_masks_from_tight_gt_boxes_are_the_union_of_gt_boxes(tmp_path, code, organ):
    label, (table,) = prepare_case(tmp_path, code, organs=[organ])
    volume, _ = run_masks(tmp_path, segmenters.BoxSegmenter(), table, organs=[organ])
    slice_axis = export.load_manifest(tmp_path / "c.manifest.json")[1].slice_axis
    expected = gt_box_union(label, LABELS[organ], slice_axis)
    assert expected.any()
    assert np.array_equal(volume == 1, expected)


@pytest.mark.parametrize("code", ["LAS", "LPS", "SAL"])
def test_overlapping_organ_boxes_go_to_the_smaller_box_on_the_images_exact_grid(tmp_path, code):
    label, (table,) = prepare_case(tmp_path, code)
    volume, coverage = run_masks(tmp_path, segmenters.BoxSegmenter(), table)
    slice_axis = export.load_manifest(tmp_path / "c.manifest.json")[1].slice_axis
    # paint the ground-truth boxes largest first, slice by slice: the smaller box ends on top
    expected = np.zeros(label.shape, np.uint8)
    for k in range(label.shape[slice_axis]):
        index = [slice(None)] * 3
        index[slice_axis] = k
        plane, painted = label[tuple(index)], expected[tuple(index)]
        found = []
        for i, organ in enumerate(ORGANS):
            bb = mask_bbox(plane == LABELS[organ])
            if bb and min(b - a for a, b in bb) >= 2:
                found.append(((bb[0][1] - bb[0][0]) * (bb[1][1] - bb[1][0]), i + 1, bb))
        for _, value, bb in sorted(found, key=lambda f: (-f[0], -f[1])):
            painted[bb[0][0] : bb[0][1], bb[1][0] : bb[1][1]] = value
    assert np.array_equal(volume, expected)
    out, image = nib.load(tmp_path / "ann0.nii.gz"), nib.load(tmp_path / "img.nii.gz")
    assert out.shape == image.shape and np.array_equal(out.affine, image.affine)
    assert out.get_data_dtype() == np.uint8
    assert set(coverage.status) == {"boxed", "absent"}
    assert len(coverage) == 5 * coverage.slice.nunique()


def count_encoder_passes(segmenter):
    calls = {"n": 0}
    segmenter.model.image_encoder.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    return calls


@pytest.mark.parametrize("kind", ["sam", "medsam"])
def test_one_encoder_pass_per_exported_slice_whatever_the_boxes_and_annotators(tmp_path, tiny_checkpoint, kind):
    label, tables = prepare_case(tmp_path, "LAS", profiles=(PERFECT, NOISY, NOISY))
    info = segmenters.check_checkpoint(tiny_checkpoint, "test_tiny")
    seg = segmenters.make_segmenter(sam_settings(tiny_checkpoint, kind), info)
    calls = count_encoder_passes(seg)
    record = masks.embed_case(
        segmenter=seg,
        manifest_path=tmp_path / "c.manifest.json",
        slices_dir=tmp_path / "png",
        out_array=tmp_path / "e.npy",
        out_record=tmp_path / "e.json",
    )
    assert calls["n"] == record["encoder_passes"] == 10  # exported slices
    cached = masks.Embeddings(tmp_path / "e.npy", tmp_path / "e.json", seg)
    n_boxes = 0
    for i, table in enumerate(tables):
        run_masks(tmp_path, seg, table, embeddings=cached, name=f"ann{i}")
        n_boxes += len(boxes.read_table(table).query("organ != ''"))
    assert n_boxes > 40 and calls["n"] == 10  # decoding all annotators' boxes added no encoder pass
    # and the cached volumes equal the uncached ones
    cached_volume = nib.load(tmp_path / "ann1.nii.gz").get_fdata()
    uncached_volume, _ = run_masks(tmp_path, seg, tables[1], name="uncached")
    assert np.array_equal(cached_volume, uncached_volume)


def test_embeddings_of_another_checkpoint_are_refused(tmp_path, tiny_checkpoint):
    prepare_case(tmp_path, "LAS")
    info = segmenters.check_checkpoint(tiny_checkpoint, "test_tiny")
    seg = segmenters.make_segmenter(sam_settings(tiny_checkpoint), info)
    masks.embed_case(
        segmenter=seg,
        manifest_path=tmp_path / "c.manifest.json",
        slices_dir=tmp_path / "png",
        out_array=tmp_path / "e.npy",
        out_record=tmp_path / "e.json",
    )
    other = segmenters.make_segmenter(sam_settings(tiny_checkpoint), {**info, "sha256": "0" * 64})
    with pytest.raises(SamcrowdError, match=r"e\.json: stale embeddings: made with key"):
        masks.Embeddings(tmp_path / "e.npy", tmp_path / "e.json", other)
    # decoding options are not part of the key: switching multimask reuses the embeddings
    single = segmenters.make_segmenter(sam_settings(tiny_checkpoint, multimask="single"), info)
    masks.Embeddings(tmp_path / "e.npy", tmp_path / "e.json", single)


def test_compose_gives_each_pixel_to_the_best_scoring_box():
    m = np.zeros((3, 4, 4), bool)
    m[0, :2, :] = True  # organ 1, score 0.5
    m[1, 1:3, :] = True  # organ 3, score 0.9
    m[2, 3, 0] = True  # organ 1 again, score 0.1
    plane = masks.compose(m, np.array([0.5, 0.9, 0.1]), np.array([1, 3, 1]))
    assert plane.tolist() == [[1, 1, 1, 1], [3, 3, 3, 3], [3, 3, 3, 3], [1, 0, 0, 0]]


def test_an_annotator_without_boxes_on_a_case_gives_an_empty_volume(tmp_path):
    prepare_case(tmp_path, "LAS")
    empty = boxes.to_frame([], ORGANS)
    io.write_tsv(tmp_path / "empty.tsv", empty)
    volume, coverage = run_masks(tmp_path, segmenters.BoxSegmenter(), tmp_path / "empty.tsv", name="nobody")
    assert not volume.any() and coverage.empty


def test_a_batch_job_loads_the_model_once_and_writes_each_cases_own_files(tmp_path, tiny_checkpoint, monkeypatch):
    """embed_batch and mask_batch: one model load for the whole batch; per-case results equal mask_case's."""
    cases = ["c", "d"]
    for i, case in enumerate(cases):
        image, label, affine = make_case(PhantomSettings.from_config(shape=(64, 56, 8)), i, "LAS")
        io.save_volume(tmp_path / f"{case}.nii.gz", image, affine)
        io.save_volume(tmp_path / f"{case}_seg.nii.gz", label, affine)
        export.export_case(
            case=case,
            image_path=tmp_path / f"{case}.nii.gz",
            out_dir=tmp_path / case,
            manifest_path=tmp_path / f"{case}.manifest.json",
            **export.settings(),
        )
    crowd.simulate_annotator(
        name="ann0",
        profile=NOISY,
        cases=[(tmp_path / f"{c}_seg.nii.gz", tmp_path / f"{c}.manifest.json") for c in cases],
        organ_values={o: LABELS[o] for o in ORGANS},
        out_dir=tmp_path / "ann0",
        seed=0,
        formats=("yolo",),
    )
    loads = {"n": 0}
    original = segmenters.SamSegmenter._load

    def counted(self):
        loads["n"] += 1
        return original(self)

    monkeypatch.setattr(segmenters.SamSegmenter, "_load", counted)
    info = segmenters.check_checkpoint(tiny_checkpoint, "test_tiny")
    batch = {
        "cases": cases,
        "manifests": [str(tmp_path / f"{c}.manifest.json") for c in cases],
        "slices": [str(tmp_path / c) for c in cases],
    }
    seg = segmenters.make_segmenter(sam_settings(tiny_checkpoint), info)
    masks.embed_batch(segmenter=seg, **batch, out_folder=tmp_path / "emb")
    assert loads["n"] == 1
    seg = segmenters.make_segmenter(sam_settings(tiny_checkpoint), info)
    masks.mask_batch(
        segmenter=seg,
        annotator="ann0",
        folder=tmp_path / "ann0",
        **batch,
        images=[str(tmp_path / f"{c}.nii.gz") for c in cases],
        embeddings=tmp_path / "emb",
        out_folder=tmp_path / "out",
        organs=list(ORGANS),
        naming="project",
        class_overrides={},
        known_cases=set(cases),
        unassigned="refuse",
    )
    assert loads["n"] == 2  # one load per job, not per case
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{c}{ext}" for c in cases for ext in (".nii.gz", ".coverage.tsv", ".boxes.tsv")
    )
    for i, case in enumerate(cases):
        files = masks.mask_files(tmp_path / "out", case)
        assert set(boxes.read_table(files["boxes"]).case) == {case}
        alone, _ = masks.mask_case(
            segmenter=seg,
            annotator="ann0",
            table_path=files["boxes"],
            manifest_path=batch["manifests"][i],
            slices_dir=batch["slices"][i],
            image_path=tmp_path / f"{case}.nii.gz",
            organs=list(ORGANS),
            out_volume=tmp_path / f"alone_{case}.nii.gz",
            out_coverage=tmp_path / f"alone_{case}.tsv",
            embeddings=masks.Embeddings(*masks.embedding_files(tmp_path / "emb", case), seg),
        )
        assert alone.any() and np.array_equal(alone, np.asarray(nib.load(files["volume"]).dataobj))
