"""Filling by the segmenter: the slices nobody boxed are asked with boxes interpolated between boxed
slices and propagated past the ends until the stopping rule; on a real CT with LiteMedSAM, every 3rd
slice boxed comes close to every slice boxed, and propagation stops where the organs end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from samcrowd import export, filling, fusion, io, masks, segmenters
from samcrowd.config import check_config, load_yaml
from samcrowd.geometry import SliceGeometry, mask_bbox
from samcrowd.metrics import dice

AFFINE = np.diag([-1.0, 1.0, 3.0, 1.0])
SHAPE = (24, 24, 12)
G = SliceGeometry.from_affine(AFFINE, SHAPE)
DEFAULTS = filling.FillSettings.from_config()


class TruthSegmenter(segmenters.Segmenter):
    """Answers from the truth: the 'PNG' is the label plane, a box's mask is its organ's pixels inside it."""

    kind = "truth"

    def __init__(self, score=0.9):
        self.score = score

    def segment(self, png, boxes, embedding=None):
        out = np.zeros((len(boxes), *png.shape), dtype=bool)
        for m, (x0, y0, x1, y1) in zip(out, boxes):
            inside = png[y0:y1, x0:x1]
            values = inside[inside > 0]
            if values.size:
                m[y0:y1, x0:x1] = inside == np.bincount(values).argmax()
        return out, np.full(len(boxes), self.score)


def truth_volume(extents):
    """Squares of organ v on slices lo..hi: {v: (lo, hi, r0, r1, c0, c1)}."""
    volume = np.zeros(SHAPE, np.uint8)
    for v, (lo, hi, r0, r1, c0, c1) in extents.items():
        for k in range(lo, hi + 1):
            plane = G.extract(volume, k).copy()
            plane[r0:r1, c0:c1] = v
            G.insert(volume, k, plane)
    return volume


def stacked_on(truth, slices):
    """The truth kept on `slices` only, as if those had been boxed."""
    out = np.zeros_like(truth)
    for k in slices:
        G.insert(out, k, G.extract(truth, k))
    return out


def run_fill(truth, boxed, seen_without=None, settings=DEFAULTS, segmenter=None):
    return filling.fill(
        stacked_on(truth, boxed),
        G,
        2,
        segmenter or TruthSegmenter(),
        lambda k: (G.extract(truth, k), None),
        set(range(G.n_slices)),
        seen_without or {},
        settings,
    )


def slices_with(volume, v):
    return [k for k in range(G.n_slices) if (G.extract(volume, k) == v).any()]


def test_boxes_are_interpolated_between_boxed_slices_and_propagated_to_where_the_organ_ends():
    truth = truth_volume({1: (2, 9, 4, 12, 4, 12)})
    filled, found = run_fill(truth, boxed=[4, 7])
    assert np.array_equal(filled, truth)  # slices 5-6 between, 2-3 and 8-9 beyond
    assert {k: found.how[1, k] for k in (5, 6)} == {5: "between", 6: "between"}
    assert {k: found.how[1, k] for k in (2, 3, 8, 9)} == dict.fromkeys((2, 3, 8, 9), "beyond")
    assert sorted((d, k, r.split(",")[0]) for v, d, k, r in found.stops) == [
        ("down", 1, "mask of 0 px"),
        ("up", 10, "mask of 0 px"),
    ]


def test_the_interpolated_box_follows_a_moving_organ_corner_by_corner():
    assert filling.interpolated_box(np.array([0, 0, 10, 10]), np.array([10, 20, 20, 30]), 0.5).tolist() == [
        5,
        10,
        15,
        20,
    ]
    assert filling.padded_box(np.pad(np.ones((2, 3), bool), 1), 2).tolist() == [0, 0, 5, 4]  # clipped at 0
    assert filling.padded_box(np.zeros((4, 4), bool), 2) is None


def test_propagation_stops_at_a_slice_an_annotator_saw_without_the_organ():
    truth = truth_volume({1: (0, 11, 4, 12, 4, 12)})
    filled, found = run_fill(truth, boxed=[5], seen_without={1: {8}})
    assert slices_with(filled, 1) == list(range(0, 8))
    assert (1, "up", 8, "an annotator saw no such organ here") in found.stops
    assert (1, "down", -1, "end of the volume") in found.stops


def test_propagation_stops_after_max_slices_at_a_low_score_and_at_a_size_jump():
    truth = truth_volume({1: (0, 11, 4, 12, 4, 12)})
    capped, _ = run_fill(truth, boxed=[5], settings=filling.FillSettings(2, 16, 0.5, 1.5, 2))
    assert slices_with(capped, 1) == [3, 4, 5, 6, 7]
    unsure, found = run_fill(truth, boxed=[3, 5], segmenter=TruthSegmenter(score=0.3))
    assert slices_with(unsure, 1) == [3, 4, 5]  # between slices need no stopping rule; beyond stopped
    assert all("under min_score 0.5" in reason for *_, reason in found.stops)
    grows = truth_volume({1: (0, 11, 8, 12, 8, 12)})
    grows[:, :, 8:] = 1  # from slice 8 on the "organ" fills the slice: a neighbour, not the organ going on
    jumped, found = run_fill(grows, boxed=[5])
    assert slices_with(jumped, 1) == list(range(0, 8))
    assert any(d == "up" and k == 8 and "over max_growth 1.5" in r for _, d, k, r in found.stops)


def test_filling_never_overwrites_a_fused_label_and_the_better_scored_organ_wins_where_two_meet():
    # the box segmenter: a mask is its box, scored higher the smaller it is
    truth = truth_volume({1: (0, 11, 4, 12, 4, 12), 2: (0, 11, 9, 13, 9, 13)})
    stacked = stacked_on(truth, [2, 9])
    G.insert(stacked, 5, G.extract(truth, 5) * (G.extract(truth, 5) == 2))  # organ 2 also fused on slice 5
    filled, found = filling.fill(
        stacked,
        G,
        2,
        segmenters.BoxSegmenter(),
        lambda k: (G.extract(truth, k), None),
        set(range(12)),
        {},
        filling.FillSettings(2, 16, 0.5, 1.5, 0),
    )
    assert np.array_equal(filled[stacked > 0], stacked[stacked > 0])
    assert found.how[1, 5] == "between" and (2, 5) not in found.how
    six = G.extract(filled, 6)
    assert (six[7:15, 7:15] == 2).all()  # organ 2's smaller box wins the overlap
    assert (six[2:7, 2:14] == 1).all() and (six[2:14, 2:7] == 1).all()


def test_fill_settings_take_the_schemas_defaults_and_refuse_a_score_outside_0_to_1():
    assert DEFAULTS == filling.FillSettings(margin_px=2, min_pixels=16, min_score=0.5, max_growth=1.5, max_slices=20)
    with pytest.raises(Exception, match=r"fusion.fill: key 'min_score': 1.5 is greater than the maximum of 1"):
        filling.FillSettings.from_config({"min_score": 1.5})


def test_filling_decodes_on_a_cpu_only_machine_even_when_the_study_encodes_on_a_gpu_in_bf16(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU (the cluster's CPU group jobs)")
    base = check_config({})["segmenter"]
    settings = {**base, "kind": "litemedsam", "device": "cuda", "precision": "bf16", "runtime": "torch"}
    record = tmp_path / "segmenter.json"
    io.write_json(record, {"settings": settings, "checkpoint": segmenters.check_checkpoint("", "", "litemedsam")})
    with pytest.raises(Exception, match="segmenter.device is cuda but torch sees no CUDA device"):
        masks.segmenter_from_record(path=record, any_device=False).prepare(1, encode=False)
    seg = masks.segmenter_from_record(path=record, any_device=True)
    seg.prepare(1, encode=False)
    assert (seg.torch_device.type, seg.precision) == ("cpu", "fp32")


# ---------------------------------------------------------------------------------- the real CT

SCAN = REPO / "tests" / "data" / "totalseg-example"
ORGAN_VALUES = load_yaml(REPO / "config" / "example_ct.yaml")["organs"]
ORGANS = list(ORGAN_VALUES)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """The real CT exported, LiteMedSAM's embeddings of every slice cached as the embed job does, its
    dense labels, and the segmenter (the shipped weights, decoding in torch)."""
    tmp = tmp_path_factory.mktemp("scan")
    base = check_config({})["segmenter"]
    settings = {**base, "kind": "litemedsam", "device": "cpu", "runtime": "torch"}
    io.write_json(
        tmp / "segmenter.json",
        {"settings": settings, "checkpoint": segmenters.check_checkpoint("", "", "litemedsam")},
    )
    seg = masks.segmenter_from_record(path=tmp / "segmenter.json", any_device=False)
    manifest = export.export_case(
        case="ct",
        image_path=SCAN / "example_ct_sm.nii.gz",
        out_dir=tmp / "slices",
        manifest_path=tmp / "ct.manifest.json",
        **export.settings(),
    )
    array, record = masks.embedding_files(tmp / "embeddings", "ct")
    masks.embed_case(
        segmenter=seg,
        manifest_path=tmp / "ct.manifest.json",
        slices_dir=tmp / "slices",
        out_array=array,
        out_record=record,
        threads=2,
    )
    _, geometry = export.load_manifest(tmp / "ct.manifest.json")
    label, affine = io.load_volume(SCAN / "example_seg.nii.gz", np.uint8)
    dense = np.zeros_like(label)
    for v, value in enumerate(ORGAN_VALUES.values(), 1):
        dense[label == value] = v
    cached = masks.Embeddings(array, record, seg)
    pngs = {r["slice"]: export.read_png(tmp / "slices" / r["png"]) for r in manifest["slices"]}
    return {
        "tmp": tmp,
        "segmenter": seg,
        "geometry": geometry,
        "label": dense,
        "affine": affine,
        "data": lambda k: (pngs[k], cached[k]),
        "exported": set(pngs),
    }


def boxed_every(scan, stride, offset=0):
    """Tight + 2 px boxes of every organ on every `stride`-th slice from `offset`, decoded by LiteMedSAM:
    the stacked labels, and the slices looked at without an organ."""
    g, label = scan["geometry"], scan["label"]
    stacked = np.zeros_like(label)
    seen_without = {v: set() for v in range(1, len(ORGANS) + 1)}
    for k in range(offset, g.n_slices, stride):
        plane, boxes, values = g.extract(label, k), [], []
        for v in range(1, len(ORGANS) + 1):
            bb = mask_bbox(plane == v)
            if bb is None or min(b - a for a, b in bb) < 2:
                seen_without[v].add(k)
                continue
            (y0, y1), (x0, x1) = bb
            h, w = plane.shape
            boxes.append([max(0, x0 - 2), max(0, y0 - 2), min(w, x1 + 2), min(h, y1 + 2)])
            values.append(v)
        if boxes:
            png, embedding = scan["data"](k)
            out, scores = scan["segmenter"].segment(png, np.array(boxes), embedding)
            g.insert(stacked, k, masks.compose(out, np.asarray(scores, float), np.array(values)))
    return stacked, seen_without


def mean_volume_dice(scan, volume):
    return float(np.mean([dice(scan["label"] == v, volume == v) for v in range(1, len(ORGANS) + 1)]))


def fill_real(scan, stacked, seen_without):
    return filling.fill(
        stacked,
        scan["geometry"],
        len(ORGANS),
        scan["segmenter"],
        scan["data"],
        scan["exported"],
        seen_without,
        DEFAULTS,
    )


def test_every_third_slice_boxed_and_filled_by_litemedsam_nearly_matches_every_slice_boxed(scan):
    every, _ = boxed_every(scan, 1)
    sparse, seen = boxed_every(scan, 3)
    filled, found = fill_real(scan, sparse, seen)
    distance = fusion.complete(
        sparse, scan["geometry"], fusion.in_plane_spacing(scan["affine"], scan["geometry"]), len(ORGANS)
    )
    full, by_segmenter, by_distance = (mean_volume_dice(scan, v) for v in (every, filled, distance))
    print(
        f"\n[fill] volume Dice: every slice {full:.3f}; every 3rd: segmenter {by_segmenter:.3f}, distance {by_distance:.3f}"
    )
    assert by_segmenter >= by_distance + 0.02
    assert by_segmenter >= 0.97 * full
    assert found.queries < 3 * 2 * len(ORGANS) * scan["geometry"].n_slices  # nothing asked twice over


@pytest.mark.parametrize("offset", [0, 1, 2])
def test_propagation_stops_within_two_slices_of_where_each_organ_ends(scan, offset):
    sparse, seen = boxed_every(scan, 3, offset)
    filled, _ = fill_real(scan, sparse, seen)
    for v, organ in enumerate(ORGANS, 1):
        truth = [k for k in range(scan["geometry"].n_slices) if (scan["geometry"].extract(scan["label"], k) == v).any()]
        got = [k for k in range(scan["geometry"].n_slices) if (scan["geometry"].extract(filled, k) == v).any()]
        assert abs(got[0] - truth[0]) <= 2 and abs(got[-1] - truth[-1]) <= 2, (organ, truth[0], truth[-1], got)


def write_annotation(scan, name, stacked, seen_without, folder):
    """One annotator's mask volume and coverage table as the masks job writes them."""
    g, rows = scan["geometry"], []
    looked = set().union(*seen_without.values()) | {k for k in range(g.n_slices) if g.extract(stacked, k).any()}
    for k in sorted(looked):
        for v, organ in enumerate(ORGANS, 1):
            boxed = (g.extract(stacked, k) == v).any()
            rows.append(
                {
                    "case": "ct",
                    "annotator": name,
                    "slice": k,
                    "organ": organ,
                    "status": "boxed" if boxed else "absent",
                    "boxes": int(boxed),
                    "voxels": 0,
                }
            )
    io.save_volume(folder / f"{name}.nii.gz", stacked, scan["affine"])
    io.write_tsv(folder / f"{name}.coverage.tsv", pd.DataFrame(rows, columns=masks.COVERAGE_COLUMNS))
    return {name: (folder / f"{name}.nii.gz", folder / f"{name}.coverage.tsv")}


def complete_kwargs(scan, out, annotation):
    tmp = scan["tmp"]
    return dict(
        case="ct",
        masks=annotation,
        manifest_path=tmp / "ct.manifest.json",
        image_path=SCAN / "example_ct_sm.nii.gz",
        slices_dir=tmp / "slices",
        organs=ORGANS,
        out_stacked=out / "stacked.nii.gz",
        out_crowd=out / "crowd.nii.gz",
        out_sparse=out / "sparse.nii.gz",
        out_table=out / "fusion.tsv",
        method="majority",
        absent="background",
        completion="segmenter",
        fill_settings={},
        segmenter_record=tmp / "segmenter.json",
        embeddings=tmp / "embeddings",
        threads=2,
    )


def test_the_fuse_job_fills_on_the_cached_embeddings_on_the_scans_exact_grid_and_marks_what_it_filled(scan, tmp_path):
    sparse, seen = boxed_every(scan, 3)
    annotation = write_annotation(scan, "ann", sparse, seen, tmp_path)
    _, crowd, table = filling.complete_case(**complete_kwargs(scan, tmp_path, annotation))
    image = nib.load(SCAN / "example_ct_sm.nii.gz")
    for name in ("stacked", "crowd", "sparse"):
        out = nib.load(tmp_path / f"{name}.nii.gz")
        assert out.shape == image.shape and np.array_equal(out.affine, image.affine), name
    filled, _ = fill_real(scan, sparse, seen)
    assert np.array_equal(crowd, filled)  # the job's filling is the library's, from the files on disk
    written = pd.read_csv(tmp_path / "fusion.tsv", sep="\t")
    assert list(written.columns) == fusion.FUSION_COLUMNS
    assert set(written.filled) == {"no", "between", "beyond"}
    boxed = written[written.boxed > 0]
    assert (boxed.filled == "no").all() and set(boxed.slice) <= set(range(0, 30, 3))
    liver = written[written.organ == "liver"].set_index("slice")
    assert liver.loc[1, "filled"] == "between" and liver.loc[29, "filled"] == "beyond"  # last boxed: 27


def as_literal(value):
    """Keyword arguments with paths as strings, to be written into a job's code."""
    if isinstance(value, dict):
        return {k: as_literal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(as_literal(v) for v in value)
    return str(value) if hasattr(value, "__fspath__") else value


def test_a_kill_during_filling_leaves_nothing_written(scan, tmp_path):
    sparse, seen = boxed_every(scan, 3)
    annotation = write_annotation(scan, "ann", sparse, seen, tmp_path)
    out = tmp_path / "out"
    kwargs = as_literal(complete_kwargs(scan, out, annotation))
    log = tmp_path / "fill.log"
    code = (
        "import logging, sys\n"
        f"logging.basicConfig(filename={str(log)!r}, level=logging.INFO)\n"
        "from samcrowd import filling\n"
        f"filling.complete_case(**{kwargs!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "fill between" not in (log.read_text() if log.exists() else ""):
        assert proc.poll() is None, "the job ended before filling began"
        time.sleep(0.05)
    assert proc.poll() is None, "filling was over before the kill"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())
    filling.complete_case(**complete_kwargs(scan, out, annotation))  # the rerun
    assert sorted(p.name for p in out.iterdir()) == ["crowd.nii.gz", "fusion.tsv", "sparse.nii.gz", "stacked.nii.gz"]


def test_filling_through_the_converted_decoder_fills_as_torch_does_and_never_imports_torch(scan, tmp_path):
    folder = tmp_path / "openvino"
    scan["segmenter"].export_decoder(folder / "d.xml", folder / "d.bin")  # as the litemedsam_openvino job does
    recorded = io.read_json(scan["tmp"] / "segmenter.json")
    io.write_json(tmp_path / "segmenter.json", {**recorded, "settings": {**recorded["settings"], "runtime": "auto"}})
    sparse, seen = boxed_every(scan, 3)
    annotation = write_annotation(scan, "ann", sparse, seen, tmp_path)
    out = tmp_path / "out"
    kwargs = {
        **complete_kwargs(scan, out, annotation),
        "segmenter_record": tmp_path / "segmenter.json",
        "decoder_ir": (folder / "d.xml", folder / "d.bin"),
        "threads": 1,
    }
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from samcrowd import filling\n"
        f"filling.complete_case(**{as_literal(kwargs)!r})\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "torch imported: False"
    assert "ct: filled by litemedsam (openvino " in run.stderr
    crowd, _ = io.load_volume(out / "crowd.nii.gz", np.uint8)
    by_torch, _ = fill_real(scan, sparse, seen)
    agreement = [dice(crowd == v, by_torch == v) for v in range(1, len(ORGANS) + 1)]
    print(f"\n[fill] openvino vs torch decoder, volume Dice per organ: {np.round(agreement, 4).tolist()}")
    assert min(agreement) >= 0.999


def test_filling_on_a_cpu_reads_the_embeddings_a_gpu_made_in_bf16(scan, tmp_path):
    # a cluster: embed jobs on GPU nodes in bf16, fuse jobs in CPU group jobs, decoding in fp32
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU (the cluster's CPU group jobs)")
    recorded = io.read_json(scan["tmp"] / "segmenter.json")
    gpu_settings = {**recorded["settings"], "device": "cuda", "precision": "bf16"}
    io.write_json(tmp_path / "segmenter.json", {**recorded, "settings": gpu_settings})
    shutil.copytree(scan["tmp"] / "embeddings", tmp_path / "embeddings")
    _, meta = masks.embedding_files(tmp_path / "embeddings", "ct")
    key = masks.segmenter_from_record(path=tmp_path / "segmenter.json", any_device=False).embedding_key()
    io.write_json(meta, {**io.read_json(meta), "key": key, "key_sha256": masks.key_digest(key)})  # as a GPU keys them
    sparse, seen = boxed_every(scan, 3)
    annotation = write_annotation(scan, "ann", sparse, seen, tmp_path)
    kwargs = complete_kwargs(scan, tmp_path / "out", annotation)
    kwargs.update(segmenter_record=tmp_path / "segmenter.json", embeddings=tmp_path / "embeddings")
    _, crowd, _ = filling.complete_case(**kwargs)
    assert np.array_equal(crowd, fill_real(scan, sparse, seen)[0])


@pytest.mark.workflow
def test_an_annotator_added_later_reruns_fusion_and_filling_only_for_the_cases_it_touched(tmp_path):
    from conftest import TINY, planned_jobs, snakemake, write_config

    from samcrowd import crowd

    cfg = write_config(tmp_path / "tiny.yaml", TINY + "annotations: {source: folder, folder: annotations}\n")
    first = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))  # nothing returned yet: data and export
    assert first.returncode == 0, first.stderr[-3000:]
    organ_values = check_config({})["organs"]
    profile = crowd.Profile(jitter_px=1, miss_rate=0, slice_fraction=1, stride=3)

    def returns(name, cases):
        crowd.simulate_annotator(
            name=name,
            profile=profile,
            cases=[
                (tmp_path / f"results/data/labels/{c}.nii.gz", tmp_path / f"results/slices/{c}.manifest.json")
                for c in cases
            ],
            organ_values=organ_values,
            out_dir=tmp_path / "annotations" / name,
            seed=0,
            formats=("yolo",),
        )

    returns("ann01", ["synth000", "synth001"])
    second = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert second.returncode == 0, second.stderr[-3000:]
    log0 = tmp_path / "results/logs/fuse/synth000.log"
    assert "completion segmenter" in log0.read_text() and "filled by random_walker" in log0.read_text()
    before = log0.stat().st_mtime_ns
    returns("ann02", ["synth001"])
    plan = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert plan.returncode == 0, plan.stderr[-3000:]
    jobs = planned_jobs(plan)
    assert jobs["masks"] == 1 and jobs["fuse"] == 1, jobs
    fuse_block = (plan.stdout + plan.stderr).split("rule fuse:")[1].split("\n\n")[0]
    assert "wildcards: case=synth001" in fuse_block
    third = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert third.returncode == 0, third.stderr[-3000:]
    assert log0.stat().st_mtime_ns == before  # synth000: neither fused nor filled again
    assert "fused 2 annotators" in (tmp_path / "results/logs/fuse/synth001.log").read_text()
