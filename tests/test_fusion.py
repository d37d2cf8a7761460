"""Fusion and 3D completion: who votes, how ties go, and that completion stays inside the organ's
annotated extent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from samcrowd import fusion, io
from samcrowd.geometry import SliceGeometry

# a 3D grid whose axis 2 is superior-inferior, so slices are volume[:, :, k] shown transposed/flipped
AFFINE = np.diag([-1.0, 1.0, 3.0, 1.0])
SHAPE = (20, 20, 9)
G = SliceGeometry.from_affine(AFFINE, SHAPE)
ORGANS = ["liver", "aorta"]


def annotation(name, boxes_by_slice, opened=None):
    """An annotator whose masks are squares: {slice: [(organ value, r0, r1, c0, c1), ...]} in PNG coordinates."""
    volume = np.zeros(SHAPE, np.uint8)
    rows = []
    for k in sorted(set(boxes_by_slice) | set(opened or [])):
        plane = np.zeros(G.png_shape, np.uint8)
        for v, r0, r1, c0, c1 in boxes_by_slice.get(k, []):
            plane[r0:r1, c0:c1] = v
        G.insert(volume, k, plane)
        for v, organ in enumerate(ORGANS, 1):
            n = sum(1 for b in boxes_by_slice.get(k, []) if b[0] == v)
            rows.append(
                {
                    "case": "c",
                    "annotator": name,
                    "slice": k,
                    "organ": organ,
                    "status": "boxed" if n else "absent",
                    "boxes": n,
                    "voxels": 0,
                }
            )
    return fusion.Annotation(name, volume, pd.DataFrame(rows))


def plane(volume, k):
    return G.extract(volume, k)


def test_majority_keeps_pixels_of_half_the_voters_or_more():
    a = annotation("a", {3: [(1, 2, 10, 2, 10)]})
    b = annotation("b", {3: [(1, 4, 12, 4, 12)]})
    c = annotation("c", {3: [(1, 6, 14, 6, 14)]})
    stacked, table = fusion.fuse("c", [a, b, c], G, ORGANS, method="majority", absent="background")
    p = plane(stacked, 3) == 1
    votes = (plane(a.volume, 3) == 1).astype(int) + (plane(b.volume, 3) == 1) + (plane(c.volume, 3) == 1)
    assert np.array_equal(p, votes >= 2)
    two, _ = fusion.fuse("c", [a, b], G, ORGANS, method="majority", absent="background")
    assert np.array_equal(plane(two, 3) == 1, (plane(a.volume, 3) == 1) | (plane(b.volume, 3) == 1))  # ties kept
    row = table[(table.organ == "liver") & (table.slice == 3)].iloc[0]
    assert (row.voters, row.boxed) == (3, 3)


def test_an_annotator_who_opened_the_slice_without_a_box_votes_absent_unless_abstaining():
    a = annotation("a", {3: [(1, 2, 10, 2, 10)]})
    b = annotation("b", {}, opened=[3])
    c = annotation("c", {}, opened=[3])
    stacked, table = fusion.fuse("c", [a, b, c], G, ORGANS, absent="background", method="majority")
    assert not (plane(stacked, 3) == 1).any()  # 1 of 3 voters
    abstain, table2 = fusion.fuse("c", [a, b, c], G, ORGANS, absent="abstain", method="majority")
    assert np.array_equal(plane(abstain, 3) == 1, plane(a.volume, 3) == 1)
    assert table2[(table2.organ == "liver") & (table2.slice == 3)].voters.item() == 1


def test_slices_nobody_opened_stay_empty_and_are_not_in_the_table():
    a = annotation("a", {2: [(1, 2, 10, 2, 10)], 6: [(1, 2, 10, 2, 10)]})
    stacked, table = fusion.fuse("c", [a], G, ORGANS, method="majority", absent="background")
    assert set(table.slice) == {2, 6}
    assert not stacked[:, :, 3:6].any()


def test_staple_fuses_with_simpleitk():
    a = annotation("a", {3: [(1, 2, 12, 2, 12)]})
    b = annotation("b", {3: [(1, 3, 12, 2, 12)]})
    c = annotation("c", {3: [(1, 2, 12, 2, 11)]})
    stacked, _ = fusion.fuse("c", [a, b, c], G, ORGANS, method="staple", absent="background")
    p = plane(stacked, 3) == 1
    assert p[3:12, 2:11].all() and not p[0:2].any()


def test_overlapping_organs_go_to_the_stronger_vote_and_ties_to_the_organ_listed_first():
    a = annotation("a", {4: [(1, 2, 10, 2, 10)]})
    b = annotation("b", {4: [(2, 5, 8, 5, 8)]})
    c = annotation("c", {4: [(2, 5, 8, 5, 8), (1, 2, 10, 12, 16)]})
    stacked, _ = fusion.fuse(
        "c", [a, b, c], G, ORGANS, method="majority", absent="background"
    )  # every opener votes on every organ
    p = plane(stacked, 4)
    assert (p[5:8, 5:8] == 2).all()  # aorta 2 of 3 votes, liver 1 of 3 there
    assert not (p[2:5, 2:10] == 1).any()  # liver alone 1 of 3: dropped
    tie, _ = fusion.fuse(
        "c", [a, b], G, ORGANS, method="majority", absent="background"
    )  # liver 1 of 2, aorta 1 of 2 on the overlap
    assert (plane(tie, 4)[5:8, 5:8] == 1).all()


def test_completion_fills_between_annotated_slices_only():
    a = annotation("a", {2: [(1, 4, 12, 4, 12)], 6: [(1, 4, 12, 4, 12)], 8: [(2, 1, 3, 1, 3)]})
    stacked, _ = fusion.fuse("c", [a], G, ORGANS, method="majority", absent="background")
    completed = fusion.complete(stacked, G, (1.0, 1.0), len(ORGANS))
    for k in (3, 4, 5):
        assert np.array_equal(plane(completed, k) == 1, plane(stacked, 2) == 1)  # same square in between
    for k in (0, 1, 7):
        assert not (plane(completed, k) == 1).any()  # never beyond the first and last annotated slice
    assert np.array_equal(completed[stacked > 0], stacked[stacked > 0])  # fused labels are kept


def test_completion_morphs_between_different_shapes():
    a = annotation("a", {1: [(1, 2, 18, 2, 18)], 5: [(1, 8, 12, 8, 12)]})
    stacked, _ = fusion.fuse("c", [a], G, ORGANS, method="majority", absent="background")
    completed = fusion.complete(stacked, G, (1.0, 1.0), len(ORGANS))
    areas = [(plane(completed, k) == 1).sum() for k in range(1, 6)]
    assert areas[0] == 256 and areas[-1] == 16
    assert all(x > y for x, y in zip(areas, areas[1:]))  # shrinks monotonically
    middle = plane(completed, 3) == 1
    assert middle[10, 10] and not middle[2, 2]


def test_fuse_case_writes_stacked_and_completed_on_the_image_grid(tmp_path):
    from samcrowd import export

    io.save_volume(tmp_path / "img.nii.gz", np.zeros(SHAPE, np.int16), AFFINE)
    export.export_case(
        case="c",
        image_path=tmp_path / "img.nii.gz",
        out_dir=tmp_path / "png",
        manifest_path=tmp_path / "m.json",
        **export.settings(),
    )
    masks = {}
    for name, spec in {"a": {2: [(1, 4, 12, 4, 12)], 6: [(1, 4, 12, 4, 12)]}, "b": {2: [(1, 4, 12, 4, 12)]}}.items():
        ann = annotation(name, spec)
        io.save_volume(tmp_path / f"{name}.nii.gz", ann.volume, AFFINE)
        io.write_tsv(tmp_path / f"{name}.tsv", ann.coverage)
        masks[name] = (tmp_path / f"{name}.nii.gz", tmp_path / f"{name}.tsv")
    stacked, crowd, table = fusion.fuse_case(
        case="c",
        masks=masks,
        manifest_path=tmp_path / "m.json",
        image_path=tmp_path / "img.nii.gz",
        organs=ORGANS,
        out_stacked=tmp_path / "s.nii.gz",
        out_crowd=tmp_path / "crowd.nii.gz",
        out_sparse=tmp_path / "sparse.nii.gz",
        out_table=tmp_path / "t.tsv",
        method="majority",
        absent="background",
        completion="distance",
    )
    back, affine = io.load_volume(tmp_path / "crowd.nii.gz")
    assert np.array_equal(affine, io.read_header(tmp_path / "img.nii.gz")[1]) and np.array_equal(back, crowd)
    liver = table[table.organ == "liver"].set_index("slice")
    assert liver.loc[2, "voters"] == 2 and liver.loc[6, "voters"] == 1
    assert liver.loc[4, "voters"] == 0 and liver.loc[4, "completed_voxels"] == 64  # filled by completion
    assert liver.loc[4, "filled"] == "distance" and liver.loc[2, "filled"] == liver.loc[6, "filled"] == "no"
    # sparse: the stacked labels where somebody voted, nnU-Net's ignore label (N + 1) on every other slice
    sparse, _ = io.load_volume(tmp_path / "sparse.nii.gz")
    voted = {2, 6}
    for k in range(SHAPE[2]):
        expected = stacked[:, :, k] if k in voted else np.full(SHAPE[:2], len(ORGANS) + 1)
        assert np.array_equal(sparse[:, :, k], expected), k
    with pytest.raises(Exception, match="no annotator left to fuse"):
        fusion.fuse_case(
            case="c",
            masks={},
            manifest_path=tmp_path / "m.json",
            image_path=tmp_path / "img.nii.gz",
            organs=ORGANS,
            out_stacked=tmp_path / "x.nii.gz",
            out_crowd=tmp_path / "y.nii.gz",
            out_sparse=tmp_path / "w.nii.gz",
            out_table=tmp_path / "z.tsv",
            method="majority",
            absent="background",
            completion="distance",
        )
