"""Segmenters: the real segment-anything code path on a small SAM, checkpoint checks, and the
weight-free random walker against the filled box."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import sam_settings

from samcrowd import devices, segmenters
from samcrowd.errors import SamcrowdError
from samcrowd.export import window
from samcrowd.geometry import SliceGeometry, mask_bbox
from samcrowd.phantom import LABELS, PhantomSettings, make_case


@pytest.fixture(scope="module")
def slice_and_boxes():
    image, label, affine = make_case(PhantomSettings.from_config(shape=(96, 96, 12)), 0, "LAS")
    g = SliceGeometry.from_affine(affine, image.shape)
    png = window(g.extract(image, 7), 40, 400)
    plane = g.extract(label, 7)
    boxes = []
    for value in LABELS.values():
        box = mask_bbox(plane == value)
        if box:
            (y0, y1), (x0, x1) = box
            boxes.append([x0, y0, x1, y1])
    return png, np.array(boxes), plane


def test_the_tiny_checkpoint_loads_through_the_vit_h_code_path(tiny_checkpoint):
    model = segmenters.load_sam("test_tiny", tiny_checkpoint, torch.device("cpu"))
    saved = torch.load(tiny_checkpoint, weights_only=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())


@pytest.mark.parametrize("kind", ["sam", "medsam"])
def test_cached_and_uncached_masks_are_identical(tiny_checkpoint, slice_and_boxes, kind, tmp_path):
    png, boxes, _ = slice_and_boxes
    info = segmenters.check_checkpoint(tiny_checkpoint, "test_tiny")
    seg = segmenters.make_segmenter(sam_settings(tiny_checkpoint, kind), info)
    features = seg.embed(png)
    assert features.dtype == np.float16
    np.save(tmp_path / "e.npy", features)
    cached = seg.segment(png, boxes, np.load(tmp_path / "e.npy"))
    uncached = seg.segment(png, boxes)
    assert np.array_equal(cached[0], uncached[0]) and np.array_equal(cached[1], uncached[1])
    assert cached[0].shape == (len(boxes), *png.shape)


def test_batched_boxes_give_the_same_masks_as_one_by_one(tiny_checkpoint, slice_and_boxes):
    png, boxes, _ = slice_and_boxes
    seg = segmenters.make_segmenter(
        sam_settings(tiny_checkpoint), segmenters.check_checkpoint(tiny_checkpoint, "test_tiny")
    )
    features = seg.embed(png)
    batched, scores = seg.segment(png, boxes, features)
    for i, box in enumerate(boxes):
        one, score = seg.segment(png, box[None], features)
        assert np.array_equal(one[0], batched[i])
        assert score[0] == pytest.approx(scores[i], abs=1e-5)


def test_sam_is_prompted_with_the_last_pixel_not_one_past_it(tiny_checkpoint, monkeypatch):
    seg = segmenters.make_segmenter(
        sam_settings(tiny_checkpoint), segmenters.check_checkpoint(tiny_checkpoint, "test_tiny")
    )
    png = np.zeros((64, 80), np.uint8)
    seen = {}
    real = seg.predictor.transform.apply_boxes_torch

    def spy(boxes, size):
        seen["boxes"] = boxes.clone()
        return real(boxes, size)

    monkeypatch.setattr(seg.predictor.transform, "apply_boxes_torch", spy)
    seg.segment(png, np.array([[10, 20, 30, 41]]))
    assert seen["boxes"].tolist() == [[10.0, 20.0, 29.0, 40.0]]


def test_unknown_checkpoints_are_allowed_with_their_hash_in_the_log(tiny_checkpoint, caplog):
    with caplog.at_level(logging.WARNING):
        info = segmenters.check_checkpoint(tiny_checkpoint, "test_tiny")
    assert info["known"] is None and len(info["sha256"]) == 64
    assert f"unknown checkpoint (not an official SAM file), SHA-256 {info['sha256']}" in caplog.text


def test_an_official_name_with_another_hash_is_refused(tiny_checkpoint, tmp_path):
    fake = tmp_path / "sam_vit_h_4b8939.pth"
    fake.write_bytes(tiny_checkpoint.read_bytes())
    with pytest.raises(
        SamcrowdError, match=r"sam_vit_h_4b8939\.pth: SHA-256 \w+ does not match the published a7bf3b02"
    ):
        segmenters.check_checkpoint(fake, "vit_h")


def test_an_official_checkpoint_of_another_model_type_is_refused(tiny_checkpoint, monkeypatch):
    sha = segmenters.sha256_file(tiny_checkpoint)
    monkeypatch.setitem(segmenters.KNOWN_CHECKPOINTS, sha, ("vit_b", "sam_vit_b_01ec64.pth"))
    with pytest.raises(
        SamcrowdError,
        match=r"this is the official vit_b checkpoint \(sam_vit_b_01ec64\.pth\), but "
        r"segmenter\.model_type is vit_h",
    ):
        segmenters.check_checkpoint(tiny_checkpoint, "vit_h")
    assert segmenters.check_checkpoint(tiny_checkpoint, "vit_b")["known"] == "sam_vit_b_01ec64.pth"


def test_missing_checkpoint_is_refused(tmp_path):
    with pytest.raises(SamcrowdError, match=r"nope\.pth: SAM checkpoint not found"):
        segmenters.check_checkpoint(tmp_path / "nope.pth", "vit_h")


def test_a_checkpoint_for_another_architecture_is_refused_by_name(tiny_checkpoint):
    with pytest.raises(SamcrowdError, match=r"tiny_sam\.pth: checkpoint does not fit model_type vit_b \(\d+ missing"):
        segmenters.load_sam("vit_b", tiny_checkpoint, torch.device("cpu"))


class Payload:
    """Something that is not a tensor: unpickling it would run code."""


def test_checkpoints_are_never_unpickled_beyond_weights(tmp_path):
    torch.save({"model": Payload()}, tmp_path / "pickled.pth")
    with pytest.raises(SamcrowdError, match=r"pickled\.pth: not a weights-only PyTorch checkpoint"):
        segmenters.load_sam("test_tiny", tmp_path / "pickled.pth", torch.device("cpu"))
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage")
    with pytest.raises(SamcrowdError, match=r"junk\.pth: not a weights-only PyTorch checkpoint"):
        segmenters.load_sam("test_tiny", tmp_path / "junk.pth", torch.device("cpu"))


def test_cuda_asked_for_but_absent_is_an_error_before_any_work(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(devices, "gpu_driver_present", lambda: True)  # a driver, but torch sees no GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SamcrowdError, match="segmenter.device is cuda but torch sees no CUDA device"):
        segmenters.resolve_device("cuda")
    assert segmenters.resolve_device("auto").type == "cpu"
    seg = segmenters.make_segmenter(
        sam_settings(tiny_checkpoint, device="cuda"), segmenters.check_checkpoint(tiny_checkpoint, "test_tiny")
    )
    with pytest.raises(SamcrowdError, match="no CUDA device"):
        seg.prepare()
    assert seg._model is None  # nothing was loaded
    seg = segmenters.make_segmenter(
        sam_settings(tiny_checkpoint, precision="bf16"), segmenters.check_checkpoint(tiny_checkpoint, "test_tiny")
    )
    with pytest.raises(SamcrowdError, match="segmenter.precision bf16 needs a CUDA device"):
        seg.prepare()


def test_a_machine_without_a_gpu_driver_resolves_auto_to_the_cpu_without_importing_torch(monkeypatch, tmp_path):
    monkeypatch.setattr(devices, "GPU_DRIVER_FILES", (str(tmp_path / "nvidiactl"),))
    assert not devices.gpu_driver_present()
    (tmp_path / "nvidiactl").touch()
    assert devices.gpu_driver_present()
    code = (
        "import sys\nfrom samcrowd import devices\n"
        "devices.GPU_DRIVER_FILES = ()\n"
        "print(devices.resolve_device('auto', 'segmenter.device'), 'torch' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["cpu", "False"], run.stderr


def test_box_segmenter_fills_the_box_and_prefers_smaller_boxes():
    masks, scores = segmenters.BoxSegmenter().segment(
        np.zeros((10, 12), np.uint8), np.array([[0, 0, 12, 10], [2, 3, 5, 6]])
    )
    assert masks[0].all() and masks[1].sum() == 9 and masks[1][3:6, 2:5].all()
    assert scores[1] > scores[0]


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_the_weight_free_segmenter_clearly_beats_the_filled_box_on_the_phantom():
    settings = PhantomSettings.from_config()
    rw, box = segmenters.RandomWalkerSegmenter.from_config(), segmenters.BoxSegmenter()
    scores = {"rw": [], "box": []}
    for case in (0, 1):
        image, label, affine = make_case(settings, case, "LAS")
        g = SliceGeometry.from_affine(affine, image.shape)
        for k in range(2, g.n_slices, 6):
            png, plane = window(g.extract(image, k), 40, 400), g.extract(label, k)
            for value in LABELS.values():
                bb = mask_bbox(plane == value)
                if bb is None or min(bb[0][1] - bb[0][0], bb[1][1] - bb[1][0]) < 2:
                    continue
                b = np.array([[bb[1][0], bb[0][0], bb[1][1], bb[0][1]]])
                scores["rw"].append(dice(rw.segment(png, b)[0][0], plane == value))
                scores["box"].append(dice(box.segment(png, b)[0][0], plane == value))
    assert len(scores["rw"]) > 30
    assert np.mean(scores["rw"]) > np.mean(scores["box"]) + 0.05


def test_what_each_segmenter_needs_is_a_class_attribute_the_workflow_reads():
    capabilities = {
        kind: (cls.needs_embedding, cls.needs_checkpoint, cls.ships_weights, cls.converts_for_openvino, cls.model_types)
        for kind, cls in segmenters.SEGMENTERS.items()
    }
    assert capabilities == {
        "sam": (True, True, False, False, ("vit_h", "vit_l", "vit_b", "test_tiny")),
        "medsam": (True, True, False, False, ("vit_b", "test_tiny")),
        "litemedsam": (True, True, True, True, ()),
        "random_walker": (False, False, False, False, ()),
        "box": (False, False, False, False, ()),
    }
    assert segmenters.LiteMedSamSegmenter.shipped_checkpoint().name == "lite_medsam.pth"
    assert segmenters.SamSegmenter.shipped_checkpoint() is None
