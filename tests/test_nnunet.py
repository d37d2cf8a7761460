"""The nnU-Net stage: datasets, folds, bad input, and a tiny dataset trained, killed, resumed,
predicted and evaluated through the real nnunetv2 programs."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest
from conftest import ORGANS

from samcrowd import io, nnunet
from samcrowd.errors import SamcrowdError
from samcrowd.phantom import LABELS, PhantomSettings, make_case

ORGAN_VALUES = {o: LABELS[o] for o in ORGANS}


def test_folds_are_disjoint_cover_every_case_and_are_reproducible():
    cases = [f"c{i}" for i in range(11)]
    splits = nnunet.folds(cases, 5, seed=3)
    assert splits == nnunet.folds(list(reversed(cases)), 5, seed=3)
    assert sorted(c for s in splits for c in s["val"]) == sorted(cases)
    for s in splits:
        assert not set(s["train"]) & set(s["val"]) and sorted(s["train"] + s["val"]) == sorted(cases)
    assert nnunet.folds(cases, 5, seed=4) != splits
    with pytest.raises(SamcrowdError, match="nnunet.folds is 5 but there are only 4 training cases"):
        nnunet.folds(cases[:4], 5, seed=0)


@pytest.fixture(scope="module")
def tiny_cases(tmp_path_factory):
    """Six small phantom cases (4 train, 2 test) with expert labels."""
    tmp = tmp_path_factory.mktemp("cases")
    settings = PhantomSettings.from_config(shape=(48, 48, 16), noise_hu=5)
    out = []
    for i, code in enumerate(["LAS", "RAS", "LAS", "LPS", "LAS", "RAS"]):
        image, label, affine = make_case(settings, i, code)
        io.save_volume(tmp / f"c{i}.nii.gz", image, affine)
        io.save_volume(tmp / f"c{i}_seg.nii.gz", label, affine)
        out.append((f"c{i}", str(tmp / f"c{i}.nii.gz"), str(tmp / f"c{i}_seg.nii.gz")))
    return out


def paths_in(tmp_path):
    return {k: str(tmp_path / "nnunet" / k) for k in ("raw", "preprocessed", "results")}


def test_nnunet_sees_every_case_in_one_orientation_and_predictions_return_to_their_own_grid(tmp_path, tiny_cases):
    import nibabel as nib

    paths = paths_in(tmp_path)
    out = tmp_path / "nnunet/raw/Dataset501_samcrowd_gt"
    nnunet.write_dataset(
        out_dir=out,
        paths=paths,
        dataset_id=501,
        source="gt",
        cases=tiny_cases[:4],
        organ_values=ORGAN_VALUES,
        other_labels="error",
    )  # stored LAS, RAS, LAS, LPS
    for case, image, label in tiny_cases[:4]:
        written = nib.load(out / "imagesTr" / f"{case}_0000.nii.gz")
        written_label = nib.load(out / "labelsTr" / f"{case}.nii.gz")
        assert nib.aff2axcodes(written.affine) == nib.aff2axcodes(written_label.affine) == tuple(nnunet.ORIENTATION)
        original = nib.load(image)
        canonical = nib.as_closest_canonical(original)
        assert np.array_equal(np.asarray(written.dataobj), np.asarray(canonical.dataobj))
        assert written.get_data_dtype() == original.get_data_dtype()
        assert np.allclose(written.affine, canonical.affine)
        # a prediction in nnU-Net's orientation goes back onto the image's exact grid
        nnunet.restore_grid(out / "labelsTr" / f"{case}.nii.gz", image, tmp_path / f"{case}_back.nii.gz")
        back = nib.load(tmp_path / f"{case}_back.nii.gz")
        assert back.shape == original.shape and np.array_equal(back.affine, original.affine)
        expected = nnunet.read_training_label(label, ORGAN_VALUES, "gt", "error")
        assert np.array_equal(np.asarray(back.dataobj), expected)


def test_dataset_holds_the_training_cases_in_nnunets_format(tmp_path, tiny_cases):
    paths = paths_in(tmp_path)
    out = tmp_path / "nnunet/raw/Dataset501_samcrowd_gt"
    dataset = nnunet.write_dataset(
        out_dir=out,
        paths=paths,
        dataset_id=501,
        source="gt",
        cases=tiny_cases[:4],
        organ_values=ORGAN_VALUES,
        other_labels="error",
    )
    assert dataset["labels"] == {
        "background": 0,
        "spleen": 1,
        "right_kidney": 2,
        "left_kidney": 3,
        "liver": 4,
        "aorta": 5,
    }
    assert dataset["channel_names"] == {"0": "CT"} and dataset["numTraining"] == 4
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [f"c{i}_0000.nii.gz" for i in range(4)]
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [f"c{i}.nii.gz" for i in range(4)]
    label, affine = io.load_volume(out / "labelsTr/c1.nii.gz")
    assert set(np.unique(label)) == {0, 1, 2, 3, 4, 5}
    assert np.array_equal(affine, io.read_header(tiny_cases[1][1])[1])
    assert json.loads((out / "dataset.json").read_text()) == dataset


def test_the_sparse_dataset_names_the_unvoted_slices_nnunets_ignore_label(tmp_path, tiny_cases):
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    case, image, label = tiny_cases[0]
    data, affine = io.load_volume(label)
    dense = np.zeros(data.shape, np.uint8)
    for i, v in enumerate(ORGAN_VALUES.values(), 1):
        dense[data == v] = i
    dense[:, :, 1::2] = 6  # the slices nobody voted on
    io.save_volume(tmp_path / "sparse.nii.gz", dense, affine)
    out = tmp_path / "nnunet/raw/Dataset504_samcrowd_sparse"
    dataset = nnunet.write_dataset(
        out_dir=out,
        paths=paths_in(tmp_path),
        dataset_id=504,
        source="sparse",
        cases=[(case, image, str(tmp_path / "sparse.nii.gz"))],
        organ_values=ORGAN_VALUES,
        other_labels="error",
    )
    assert dataset["labels"]["ignore"] == 6 and list(dataset["labels"])[-1] == "ignore"
    manager = LabelManager(dataset["labels"], regions_class_order=None)
    assert manager.has_ignore_label and manager.ignore_label == 6  # what nnU-Net's loss leaves out
    written, _ = io.load_volume(out / f"labelsTr/{case}.nii.gz")
    assert (written == 6).sum() == (dense == 6).sum()
    dense[0, 0, 0] = 7
    io.save_volume(tmp_path / "sparse.nii.gz", dense, affine)
    with pytest.raises(SamcrowdError, match=r"sparse\.nii\.gz: label value 7 is outside the 5 organs"):
        nnunet.write_dataset(
            out_dir=out,
            paths=paths_in(tmp_path),
            dataset_id=504,
            source="sparse",
            cases=[(case, image, str(tmp_path / "sparse.nii.gz"))],
            organ_values=ORGAN_VALUES,
            other_labels="error",
        )


def test_bad_labels_and_taken_dataset_ids_are_refused(tmp_path, tiny_cases):
    paths = paths_in(tmp_path)
    case, image, label = tiny_cases[0]
    data, affine = io.load_volume(label)
    data[0, 0, 0] = 9  # a structure that is no organ of the list
    io.save_volume(tmp_path / "odd.nii.gz", data, affine)
    with pytest.raises(SamcrowdError, match=r"odd\.nii\.gz: label value 9 is not in the organ list"):
        nnunet.write_dataset(
            out_dir=tmp_path / "nnunet/raw/Dataset501_samcrowd_gt",
            paths=paths,
            dataset_id=501,
            source="gt",
            cases=[(case, image, str(tmp_path / "odd.nii.gz"))],
            organ_values=ORGAN_VALUES,
            other_labels="error",
        )
    nnunet.write_dataset(
        out_dir=tmp_path / "nnunet/raw/Dataset501_samcrowd_gt",
        paths=paths,
        dataset_id=501,
        source="gt",
        cases=[(case, image, str(tmp_path / "odd.nii.gz"))],
        organ_values=ORGAN_VALUES,
        other_labels="background",
    )
    data[0, 0, 0] = 6  # crowd labels are 1..5
    io.save_volume(tmp_path / "crowd.nii.gz", data, affine)
    with pytest.raises(SamcrowdError, match=r"crowd\.nii\.gz: label value 6 is outside the 5 organs"):
        nnunet.write_dataset(
            out_dir=tmp_path / "nnunet/raw/Dataset502_samcrowd_crowd",
            paths=paths,
            dataset_id=502,
            source="crowd",
            cases=[(case, image, str(tmp_path / "crowd.nii.gz"))],
            organ_values=ORGAN_VALUES,
            other_labels="error",
        )
    (tmp_path / "nnunet/results/Dataset503_SomebodyElse").mkdir(parents=True)
    with pytest.raises(SamcrowdError, match=r"Dataset503_SomebodyElse: nnU-Net dataset id 503 is already used"):
        nnunet.write_dataset(
            out_dir=tmp_path / "nnunet/raw/Dataset503_samcrowd_stacked",
            paths=paths,
            dataset_id=503,
            source="stacked",
            cases=tiny_cases[:1],
            organ_values=ORGAN_VALUES,
            other_labels="error",
        )
    assert not (tmp_path / "nnunet/raw/Dataset503_samcrowd_stacked").exists()


def test_environment_points_nnunet_at_its_folders_and_our_trainers(tmp_path):
    env = nnunet.environment(paths_in(tmp_path), processes=3, base={"nnUNet_extTrainer": "/elsewhere"})
    assert env["nnUNet_raw"] == str((tmp_path / "nnunet/raw").resolve())
    assert env["nnUNet_extTrainer"].split(os.pathsep) == [str(nnunet.TRAINERS), "/elsewhere"]
    assert (env["nnUNet_def_n_proc"], env["nnUNet_n_proc_DA"]) == ("3", "2")
    assert env[nnunet.THREADS_VARIABLE] == "3"  # samcrowd's trainers use the job's threads, not every core
    assert nnunet.environment(paths_in(tmp_path), processes=1)["nnUNet_n_proc_DA"] == "1"
    # deterministic training: augmentation in the trainer's own process
    assert nnunet.environment(paths_in(tmp_path), processes=3, augmentation_workers=0)["nnUNet_n_proc_DA"] == "0"


RESUMABLE = textwrap.dedent("""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    class nnUNetTrainer_resumeTest(nnUNetTrainer):
        def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 3, 2, 1
            self.save_every = 1
""")


def nnunet_checkpoint_written(folder):
    latest = folder / "checkpoint_latest.pth"
    return latest.exists() and nnunet.intact(latest)


def train_dummy(paths, **settings):
    """`nnunet.train` of fold 0 with a 2d dummy trainer, one round unless `settings` say otherwise (the
    tests replace `nnunet.run`, so nothing trains)."""
    return nnunet.train(
        **{
            "paths": paths,
            "dataset_id": 501,
            "source": "gt",
            "configuration": "2d",
            "fold": 0,
            "trainer": "nnUNetTrainer_x",
            "device": "cpu",
            "deterministic": False,
            "seed": 0,
            "round_number": 1,
            "n_rounds": 1,
            **settings,
        }
    )


def test_a_checkpoint_damaged_by_a_kill_is_removed_before_resuming(tmp_path, monkeypatch, caplog):
    paths = paths_in(tmp_path)
    folder = nnunet.fold_folder(paths, 501, "gt", "nnUNetTrainer_x", "2d", 0)
    folder.mkdir(parents=True)
    (folder / "checkpoint_latest.pth").write_bytes(b"PK\x03\x04 half written")
    calls = []
    monkeypatch.setattr(nnunet, "run", lambda args, env, what: calls.append(args))
    with caplog.at_level(logging.WARNING), pytest.raises(SamcrowdError, match="without writing checkpoint_final"):
        train_dummy(paths)
    assert "is damaged (the job was killed while writing it?): removing it" in caplog.text
    assert not (folder / "checkpoint_latest.pth").exists() and "--start" not in calls[0]


def test_checkpoints_of_an_earlier_training_are_never_resumed(tmp_path, monkeypatch, caplog):
    # a rerun after new annotators (new preprocessing) or with another seed must train afresh: resuming
    # would pick up the old labels' checkpoint and call the training done
    paths = paths_in(tmp_path)
    splits = tmp_path / "nnunet/preprocessed/Dataset501_samcrowd_gt/splits_final.json"
    splits.parent.mkdir(parents=True)
    splits.write_text("[]")
    folder = nnunet.fold_folder(paths, 501, "gt", "nnUNetTrainer_x", "2d", 0)
    calls = []
    monkeypatch.setattr(nnunet, "run", lambda args, env, what: calls.append((args, env)))

    def leave_checkpoints():
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("checkpoint_latest.pth", "checkpoint_best.pth"):
            with zipfile.ZipFile(folder / name, "w") as archive:
                archive.writestr("data.pkl", b"weights")

    def train(seed):
        """A first round that stops (as if killed) and leaves checkpoints; whether it found them first."""
        kept = (folder / "checkpoint_latest.pth").exists()
        with pytest.raises(SamcrowdError, match="without writing checkpoint_final"):
            train_dummy(paths, seed=seed)
        found = (folder / "checkpoint_latest.pth").exists()
        assert found == kept or not found
        leave_checkpoints()  # as if killed after some epochs
        return found, calls[-1][1]

    found, env = train(seed=0)
    assert not found and env[nnunet.SEED_VARIABLE] == "0"
    assert train(seed=0)[0]  # the same training, killed: its checkpoints stay for the round to continue from
    with caplog.at_level(logging.INFO, logger="samcrowd.nnunet"):
        found, env = train(seed=1)  # another seed: afresh
    assert not found and env[nnunet.SEED_VARIABLE] == "1"
    assert "holds an earlier training (other labels, settings or seed): starting afresh" in caplog.text
    os.utime(splits, ns=(1, 1))  # preprocessed again (new crowd labels): afresh
    assert not train(seed=1)[0]
    folder_files = sorted(p.name for p in folder.iterdir())
    assert folder_files == ["checkpoint_best.pth", "checkpoint_latest.pth", nnunet.TRAINING_RECORD]
    # a later round of another training is refused, never trained on top of the wrong checkpoint
    nnunet.round_checkpoint(folder, 1).write_bytes(b"")
    with pytest.raises(SamcrowdError, match="earlier rounds trained with other labels, settings or seed"):
        train_dummy(paths, seed=2, round_number=2, n_rounds=3)


def test_trainers_use_the_jobs_threads_and_one_thread_for_repeatable_models(tmp_path, monkeypatch):
    # nnUNetv2_train on a CPU would use every core of the node; several threads on a busy CPU round
    # differently from run to run, so nnunet.deterministic trains on one
    calls = []
    monkeypatch.setattr(nnunet, "run", lambda args, env, what: calls.append(env))
    for deterministic in (False, True):
        with pytest.raises(SamcrowdError, match="without writing checkpoint_final"):
            train_dummy(paths_in(tmp_path), processes=4, deterministic=deterministic)
    assert [env[nnunet.THREADS_VARIABLE] for env in calls] == ["4", "1"]
    assert [env["nnUNet_n_proc_DA"] for env in calls] == ["3", "0"]


def test_a_tiny_dataset_trains_resumes_after_a_kill_predicts_and_evaluates(tmp_path, tiny_cases, caplog, monkeypatch):
    start = time.perf_counter()
    paths = paths_in(tmp_path)
    (tmp_path / "trainers").mkdir()
    (tmp_path / "trainers/resume_test_trainer.py").write_text(RESUMABLE)
    monkeypatch.setenv("nnUNet_extTrainer", str(tmp_path / "trainers"))
    raw = tmp_path / "nnunet/raw/Dataset501_samcrowd_gt"
    nnunet.write_dataset(
        out_dir=raw,
        paths=paths,
        dataset_id=501,
        source="gt",
        cases=tiny_cases[:4],
        organ_values=ORGAN_VALUES,
        other_labels="error",
    )
    splits = nnunet.preprocess(
        raw_dataset=raw, paths=paths, dataset_id=501, configuration="3d_fullres", n_folds=2, seed=0
    )
    stored = json.loads((tmp_path / "nnunet/preprocessed/Dataset501_samcrowd_gt/splits_final.json").read_text())
    assert stored == splits and len(splits) == 2

    # fold 0 straight through; fold 1 killed after its first checkpoint, then rerun: it continues
    trainer = "nnUNetTrainer_resumeTest"  # nnUNetTrainer, 3 short epochs, a checkpoint every epoch
    train = functools.partial(  # one training: fold 0 straight through, fold 1 resumed after a kill
        nnunet.train,
        paths=paths,
        dataset_id=501,
        source="gt",
        configuration="3d_fullres",
        trainer=trainer,
        device="cpu",
        deterministic=False,
        seed=0,
        round_number=1,
        n_rounds=1,
    )
    train(fold=0)
    folder = nnunet.fold_folder(paths, 501, "gt", trainer, "3d_fullres", 1)
    code = (
        f"from samcrowd import nnunet; nnunet.train(paths={paths!r}, dataset_id=501, source='gt', "
        f"configuration='3d_fullres', fold=1, trainer={trainer!r}, device='cpu', deterministic=False, seed=0, "
        "round_number=1, n_rounds=1)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not nnunet_checkpoint_written(folder) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (folder / "checkpoint_latest.pth").exists() and not (folder / "checkpoint_final.pth").exists()
    with caplog.at_level(logging.INFO, logger="samcrowd.nnunet"):
        train(fold=1)
    assert re.search(r"round 1/1 continues from epoch [12] of 3 \(checkpoint_latest.pth", caplog.text)
    epochs = [int(m) for m in re.findall(r"nnU-Net: [\d\-: .]*Epoch (\d+)$", caplog.text, re.M)]
    assert epochs and epochs[0] > 0 and epochs[-1] == 2  # picked up where it stopped, ran to the end
    assert (folder / "checkpoint_final.pth").exists()

    # the ensemble of both folds predicts the test cases; their Dice
    images = tmp_path / "imagesTs"
    nnunet.test_images(cases=[(c, i) for c, i, _ in tiny_cases[4:]], out_dir=images)
    assert sorted(p.name for p in images.iterdir()) == ["c4_0000.nii.gz", "c5_0000.nii.gz"]
    predicted = nnunet.predict(
        images=images,
        cases=[(c, i) for c, i, _ in tiny_cases[4:]],
        out_dir=tmp_path / "predictions",
        paths=paths,
        dataset_id=501,
        configuration="3d_fullres",
        trainer=trainer,
        n_folds=2,
        device="cpu",
    )
    assert [p.name for p in predicted] == ["c4.nii.gz", "c5.nii.gz"]
    prediction, affine = io.load_volume(predicted[0])
    assert prediction.shape == (48, 48, 16) and np.array_equal(affine, io.read_header(tiny_cases[4][1])[1])
    table = nnunet.test_dice(
        predictions={"gt": tmp_path / "predictions"},
        references=[(c, label) for c, _, label in tiny_cases[4:]],
        organ_values=ORGAN_VALUES,
        other_labels="error",
    )
    assert len(table) == 10 and set(table.organ) == set(ORGANS)
    assert table.dice.dropna().between(0, 1).all()
    assert time.perf_counter() - start < 180


def test_training_status_says_how_far_each_fold_is_from_its_jobs_record(tmp_path):
    paths = paths_in(tmp_path)
    folder = functools.partial(nnunet.fold_folder, paths, 501, "gt", "nnUNetTrainer", "3d_fullres")
    folder(0).mkdir(parents=True)
    io.write_json(
        folder(0) / nnunet.PROGRESS,
        {
            "epochs": 1000,
            "epochs_done": 412,
            "saved_epoch": 400,
            "round": 1,
            "rounds": 2,
            "target": 500,
            "state": "training",
            "job": "81234",
            "updated": "2026-12-07T10:00:00+0000",
        },
    )
    folder(1).mkdir(parents=True)
    (folder(1) / "checkpoint_final.pth").write_bytes(b"")  # trained before samcrowd kept a record
    table = nnunet.training_status(
        paths=paths,
        dataset_ids={"gt": 501},
        sources=["gt"],
        trainer="nnUNetTrainer",
        configuration="3d_fullres",
        folds=3,
    )
    assert table.to_dict("records") == [
        {
            "source": "gt",
            "fold": 0,
            "epochs": "412/1000",
            "saved": 400,
            "round": "1/2",
            "state": "training",
            "job": "81234",
            "updated": "2026-12-07T10:00:00+0000",
        },
        {
            "source": "gt",
            "fold": 1,
            **dict.fromkeys(["epochs", "saved", "round", "job", "updated"], "-"),
            "state": "finished (no record)",
        },
        {
            "source": "gt",
            "fold": 2,
            **dict.fromkeys(["epochs", "saved", "round", "job", "updated"], "-"),
            "state": "not started",
        },
    ]
