"""nnU-Net v2 around the study: datasets per label source, folds, training, prediction, test Dice.

Each label source (`gt`: the expert labels; `crowd`: the completed crowd labels; `stacked`:
the crowd labels before completion; `sparse`: the stacked labels with the slices nobody voted
on marked as nnU-Net's `ignore` label, so that it trains on what was really annotated) becomes
a raw dataset in nnU-Net's own format built from the training cases only, every volume in one
orientation (`ORIENTATION`): nnU-Net reads arrays in their stored order, so a case stored RAS
among LAS cases would show it a mirrored abdomen.
Predictions are put back on each test image's own grid. nnU-Net itself runs through its
command-line programs in a child process (they guard their worker processes; a Snakemake script does not), with the
environment this module builds: nnU-Net's folders, samcrowd's short trainers on
`nnUNet_extTrainer`, and worker counts that suit the job's cores.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections import deque
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from samcrowd import io
from samcrowd.devices import resolve_device
from samcrowd.errors import SamcrowdError
from samcrowd.evaluation import LABEL_SOURCES, read_expert_label
from samcrowd.geometry import orientation_code, reorient
from samcrowd.metrics import dice_from_counts, label_counts

log = logging.getLogger(__name__)

#: The folder of samcrowd's nnU-Net trainers (nnU-Net finds trainers by scanning folders: nnUNet_extTrainer).
TRAINERS = Path(str(resources.files("samcrowd.nnunet_trainers")))
SOURCES = LABEL_SOURCES  # each can train a model
#: nnU-Net's folder variables, by the key of `nnunet.paths` that overrides each.
FOLDER_VARIABLES = {"raw": "nnUNet_raw", "preprocessed": "nnUNet_preprocessed", "results": "nnUNet_results"}
#: The orientation of every volume nnU-Net sees (nibabel's axis code; its closest-canonical one).
ORIENTATION = "RAS"
TEST_DICE_COLUMNS = ["source", "case", "organ", "dice", "n_ref", "n_pred"]


#: The environment variable through which samcrowd's trainers get `nnunet.seed`.
SEED_VARIABLE = "SAMCROWD_NNUNET_SEED"
#: The environment variable through which samcrowd's trainers get the job's thread count (nnUNetv2_train
#: itself sets torch to every core of the machine on a CPU).
THREADS_VARIABLE = "SAMCROWD_NNUNET_THREADS"


def dataset_name(dataset_id: int, source: str) -> str:
    """nnU-Net's folder name of a source's dataset, e.g. Dataset501_samcrowd_gt."""
    return f"Dataset{dataset_id:03d}_samcrowd_{source}"


def environment(
    paths: dict[str, str],
    processes: int = 1,
    base: dict[str, str] | None = None,
    augmentation_workers: int | None = None,
) -> dict[str, str]:
    """Environment for nnU-Net's programs: its folders, our trainers, worker counts for this job.

    `augmentation_workers` 0 makes training augment in its own process, in a repeatable order.
    """
    env = dict(os.environ if base is None else base)
    env.update(
        {
            **{variable: str(Path(paths[key]).resolve()) for key, variable in FOLDER_VARIABLES.items()},
            "nnUNet_extTrainer": os.pathsep.join(filter(None, [str(TRAINERS), env.get("nnUNet_extTrainer", "")])),
            "nnUNet_def_n_proc": str(processes),
            # at least 1: nnU-Net's planner passes this number to torch.set_num_threads
            "nnUNet_n_proc_DA": str(max(1, processes - 1) if augmentation_workers is None else augmentation_workers),
            THREADS_VARIABLE: str(processes),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def program(name: str) -> str:
    """An nnU-Net console program of this interpreter's environment."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise SamcrowdError(f"nnU-Net program {name} not found (is nnunetv2 installed in this environment?)")
    return found


def run(args: list[str], env: dict[str, str], what: str) -> None:
    """Run an nnU-Net program, its output line by line into the log; fail with its last lines."""
    log.info("running: %s", " ".join(args))
    tail: deque[str] = deque(maxlen=25)
    with subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                tail.append(line)
                log.info("nnU-Net: %s", line)
    if proc.returncode != 0:
        raise SamcrowdError(f"{what} failed (exit status {proc.returncode}); last output: " + " | ".join(tail))


def check_dataset_id(paths: dict[str, str], dataset_id: int, name: str) -> None:
    """Refuse a dataset id that another dataset already uses in any of nnU-Net's folders."""
    for root in paths.values():
        root = Path(root)
        if not root.is_dir():
            continue
        for other in root.glob(f"Dataset{dataset_id:03d}_*"):
            if other.name != name:
                raise SamcrowdError(
                    f"nnU-Net dataset id {dataset_id} is already used by {other.name}; choose another "
                    "id in nnunet.dataset_ids",
                    other,
                )


def _link_or_copy(src: str | Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write_image(src: str | Path, dst: Path) -> None:
    """An image for nnU-Net in `ORIENTATION`: linked when stored so, else reoriented (same voxels and
    data type, no resampling)."""
    import nibabel as nib

    _, affine = io.read_header(src)
    if orientation_code(affine) == ORIENTATION:
        _link_or_copy(src, dst)
    else:
        nib.save(nib.as_closest_canonical(nib.load(src)), dst)


def restore_grid(prediction: str | Path, image: str | Path, out: str | Path) -> None:
    """A prediction made in `ORIENTATION` put back on its image's own grid (exact shape and affine)."""
    shape, affine = io.read_header(image)
    data, predicted_affine = io.load_volume(prediction, np.uint8)
    back, back_affine = reorient(data, predicted_affine, orientation_code(affine))
    if back.shape != tuple(shape) or not np.allclose(back_affine, affine, atol=1e-3):
        raise SamcrowdError(
            f"prediction does not cover its image's grid (shape {back.shape}, image {tuple(shape)})", prediction
        )
    io.save_volume(out, back, affine)


def ignore_value(source: str, n_organs: int) -> int | None:
    """The label value nnU-Net ignores in a source's labels: N + 1 for the sparse labels (nnU-Net wants
    the highest value, named `ignore` in dataset.json), none for the others."""
    return n_organs + 1 if source == "sparse" else None


def read_training_label(path: str | Path, organ_values: dict[str, int], source: str, other_labels: str) -> np.ndarray:
    """A training label as 1..N: expert values mapped through `organ_values`; crowd labels checked to be
    0..N (sparse labels: and N + 1, the ignored slices)."""
    if source == "gt":
        return read_expert_label(path, organ_values, other_labels)
    label, _ = io.load_volume(path, np.uint8)
    values = set(np.unique(label).tolist()) - {0, ignore_value(source, len(organ_values))}
    beyond = sorted(v for v in values if v > len(organ_values))
    if beyond:
        raise SamcrowdError(
            f"label value {beyond[0]} is outside the {len(organ_values)} organs (1..{len(organ_values)})", path
        )
    return label


def write_dataset(
    *,
    out_dir: str | Path,
    paths: dict[str, str],
    dataset_id: int,
    source: str,
    cases: list[tuple[str, str, str]],
    organ_values: dict[str, int],
    other_labels: str,
) -> dict:
    """nnU-Net raw dataset of one source from training cases [(case, image, label)]; returns dataset.json."""
    out_dir = Path(out_dir)
    name = dataset_name(dataset_id, source)
    if out_dir.name != name:
        raise SamcrowdError(f"dataset folder must be named {name}", out_dir)
    check_dataset_id(paths, dataset_id, name)
    seen = {v: 0 for v in range(1, len(organ_values) + 1)}
    with io.atomic_output(out_dir, directory=True) as tmp:
        (tmp / "imagesTr").mkdir()
        (tmp / "labelsTr").mkdir()
        for case, image, label in cases:
            shape, affine = io.read_header(image)
            dense = read_training_label(label, organ_values, source, other_labels)
            if dense.shape != tuple(shape):
                raise SamcrowdError(f"label shape {dense.shape} differs from its image {tuple(shape)}", label)
            for v in seen:
                seen[v] += int(np.any(dense == v))
            _write_image(image, tmp / "imagesTr" / f"{case}_0000.nii.gz")
            io.save_volume(tmp / "labelsTr" / f"{case}.nii.gz", *reorient(dense, affine, ORIENTATION))
        labels = {"background": 0, **{organ: i for i, organ in enumerate(organ_values, 1)}}
        if ignore_value(source, len(organ_values)) is not None:
            labels["ignore"] = ignore_value(source, len(organ_values))  # nnU-Net trains on the other voxels only
        dataset = {
            "name": name,
            "description": f"samcrowd: training cases with {source} labels",
            "channel_names": {"0": "CT"},
            "labels": labels,
            "numTraining": len(cases),
            "file_ending": ".nii.gz",
        }
        io.write_json(tmp / "dataset.json", dataset)
    missing = [organ for organ, v in zip(organ_values, seen) if seen[v] == 0]
    if missing:
        log.warning("%s: organ %s appears in none of the training labels", name, ", ".join(missing))
    log.info("%s: %d training cases", name, len(cases))
    return dataset


def folds(cases: list[str], n_folds: int, seed: int) -> list[dict[str, list[str]]]:
    """nnU-Net splits (train/val per fold) over the sorted cases, shuffled with `seed`."""
    if n_folds < 2:
        raise SamcrowdError(f"nnunet.folds must be at least 2, not {n_folds}")
    if len(cases) < n_folds:
        raise SamcrowdError(f"nnunet.folds is {n_folds} but there are only {len(cases)} training cases")
    order = sorted(cases)
    np.random.default_rng(seed).shuffle(order)
    parts = np.array_split(np.array(order, dtype=object), n_folds)
    return [
        {"train": sorted(c for j, p in enumerate(parts) if j != i for c in p), "val": sorted(parts[i])}
        for i in range(n_folds)
    ]


def preprocess(
    *,
    raw_dataset: str | Path,
    paths: dict[str, str],
    dataset_id: int,
    configuration: str,
    n_folds: int,
    seed: int,
    processes: int = 1,
) -> list[dict]:
    """Plan and preprocess one dataset (from scratch), then write the study's splits_final.json
    where nnU-Net reads it (the preprocessed dataset's folder)."""
    name = Path(raw_dataset).name
    target = Path(paths["preprocessed"]) / name
    if target.exists():
        shutil.rmtree(target)  # stale plans of an earlier dataset version must not survive
    run(
        [
            program("nnUNetv2_plan_and_preprocess"),
            "-d",
            str(dataset_id),
            "-c",
            configuration,
            "-npfp",
            str(processes),
            "-np",
            str(processes),
            "--verify_dataset_integrity",
        ],
        environment(paths, processes),
        f"planning and preprocessing {name}",
    )
    cases = [p.name.removesuffix(".nii.gz") for p in sorted((Path(raw_dataset) / "labelsTr").glob("*.nii.gz"))]
    splits = folds(cases, n_folds, seed)
    io.write_json(target / "splits_final.json", splits)
    return splits


def fold_folder(
    paths: dict[str, str], dataset_id: int, source: str, trainer: str, configuration: str, fold: int
) -> Path:
    return (
        Path(paths["results"])
        / dataset_name(dataset_id, source)
        / trainer_folder(trainer, configuration)
        / f"fold_{fold}"
    )


def trainer_folder(trainer: str, configuration: str) -> str:
    """nnU-Net's results subfolder of a trainer, its (default) plans and a configuration."""
    return f"{trainer}__nnUNetPlans__{configuration}"


#: Written next to a fold's checkpoints when its training starts: what the training was of. A rerun
#: continues (`--c`) only from checkpoints whose record matches; others are an earlier training's
#: (other labels after adding annotators, another seed) and are removed, never resumed.
TRAINING_RECORD = "samcrowd_training.json"


def training_record(
    paths: dict[str, str],
    dataset_id: int,
    source: str,
    configuration: str,
    trainer: str,
    deterministic: bool,
    seed: int,
) -> dict:
    """What one fold's training is of: its settings and the preprocessing it reads (splits_final.json,
    rewritten by every `preprocess`, identified by size and modification time)."""
    splits = Path(paths["preprocessed"]) / dataset_name(dataset_id, source) / "splits_final.json"
    stat = splits.stat() if splits.exists() else None
    return {
        "configuration": configuration,
        "trainer": trainer,
        "deterministic": deterministic,
        "seed": seed,
        "splits_final": [stat.st_size, stat.st_mtime_ns] if stat else None,
    }


#: Written by each training job in the fold's folder: epochs done and saved, round, state (`training_status`).
PROGRESS = "samcrowd_progress.json"


def round_checkpoint(folder: str | Path, round_number: int | str) -> Path:
    """Where round r (before the last) of a fold's training leaves its checkpoint (`round_number` may be a
    wildcard, "{round}")."""
    return Path(folder) / f"checkpoint_round_{round_number}.pth"


def train(
    *,
    paths: dict[str, str],
    dataset_id: int,
    source: str,
    configuration: str,
    fold: int,
    trainer: str,
    device: str,
    processes: int = 1,
    deterministic: bool,
    seed: int,
    round_number: int,
    n_rounds: int,
) -> Path:
    """Train round `round_number` of `n_rounds` of one fold (`samcrowd.nnunet_rounds`, in a child process):
    round 1 starts the training, later rounds continue from the previous round's checkpoint, and any round
    continues from checkpoint_latest.pth where an interrupted attempt of the same training left one.
    Returns the round's checkpoint (the last round's: checkpoint_final.pth).

    `deterministic`: augmentation in the training process (see `environment`) and torch on one thread
    (samcrowd's trainers), for repeatable models.
    `seed`: seeds samcrowd's trainers (weights and sampling; `SEED_VARIABLE`); nnU-Net's own ignore it.
    """
    folder = fold_folder(paths, dataset_id, source, trainer, configuration, fold)
    final = folder / "checkpoint_final.pth"
    last = round_number == n_rounds
    out = final if last else round_checkpoint(folder, round_number)
    start = round_checkpoint(folder, round_number - 1) if round_number > 1 else None
    if start is not None and not start.is_file():
        raise SamcrowdError(f"round {round_number} of {n_rounds} needs the previous round's checkpoint", start)
    for name in ("checkpoint_latest.pth", "checkpoint_best.pth"):
        checkpoint = folder / name
        if checkpoint.exists() and not intact(checkpoint):
            log.warning("%s is damaged (the job was killed while writing it?): removing it", checkpoint)
            checkpoint.unlink()
    record = training_record(paths, dataset_id, source, configuration, trainer, deterministic, seed)
    recorded = folder / TRAINING_RECORD
    same = recorded.exists() and json.loads(recorded.read_text()) == json.loads(json.dumps(record))
    if round_number == 1 and not same and folder.exists() and any(folder.iterdir()):
        log.info("%s holds an earlier training (other labels, settings or seed): starting afresh", folder)
        shutil.rmtree(folder)
    elif not same and round_number > 1:
        raise SamcrowdError("the fold's earlier rounds trained with other labels, settings or seed", recorded)
    if final.exists():
        final.unlink()  # this job trains it anew (Snakemake reruns it): a stale one must not stay
    folder.mkdir(parents=True, exist_ok=True)
    io.write_json(recorded, record)
    args = [
        sys.executable,
        "-m",
        "samcrowd.nnunet_rounds",
        "--dataset-id",
        str(dataset_id),
        "--configuration",
        configuration,
        "--fold",
        str(fold),
        "--trainer",
        trainer,
        "--device",
        resolve_device(device, "nnunet.device"),
        "--round",
        str(round_number),
        "--rounds",
        str(n_rounds),
        "--record",
        str(recorded),
        *(["--start", str(start)] if start else []),
        *(["--out", str(out)] if not last else []),
    ]
    env = environment(paths, processes, augmentation_workers=0 if deterministic else None)
    env[SEED_VARIABLE] = str(seed)
    if deterministic:  # multi-threaded CPU kernels round differently when the threads are descheduled
        env[THREADS_VARIABLE] = "1"
    run(args, env, f"training {dataset_name(dataset_id, source)} fold {fold} (round {round_number}/{n_rounds})")
    if not out.exists():
        raise SamcrowdError(f"the training round finished without writing {out.name}", folder)
    return out


TRAINING_STATUS_COLUMNS = ["source", "fold", "epochs", "saved", "round", "state", "job", "updated"]


def training_status(
    *,
    paths: dict[str, str],
    dataset_ids: dict[str, int],
    sources: list[str],
    trainer: str,
    configuration: str,
    folds: int,
) -> pd.DataFrame:
    """How far each fold's training is, from the record its jobs keep (`PROGRESS`): epochs done of the
    total, the newest epoch a checkpoint holds (what a stopped job continues from), round, state."""
    rows = []
    for source in sources:
        for fold in range(folds):
            folder = fold_folder(paths, dataset_ids[source], source, trainer, configuration, fold)
            record = folder / PROGRESS
            if record.is_file():
                p = io.read_json(record)
                rows.append(
                    {
                        "source": source,
                        "fold": fold,
                        "epochs": f"{p['epochs_done']}/{p['epochs']}",
                        "saved": p["saved_epoch"],
                        "round": f"{p['round']}/{p['rounds']}",
                        "state": p["state"],
                        "job": p["job"] or "-",
                        "updated": p["updated"],
                    }
                )
            else:
                done = (folder / "checkpoint_final.pth").is_file()
                rows.append(
                    {
                        "source": source,
                        "fold": fold,
                        "epochs": "-",
                        "saved": "-",
                        "round": "-",
                        "state": "finished (no record)" if done else "not started",
                        "job": "-",
                        "updated": "-",
                    }
                )
    return pd.DataFrame(rows, columns=TRAINING_STATUS_COLUMNS)


def intact(checkpoint: Path) -> bool:
    """Whether a PyTorch checkpoint (a zip archive) was written completely: every member's CRC checks."""
    import zipfile

    try:
        with zipfile.ZipFile(checkpoint) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def predict(
    *,
    images: str | Path,
    cases: list[tuple[str, str]],
    out_dir: str | Path,
    paths: dict[str, str],
    dataset_id: int,
    configuration: str,
    trainer: str,
    n_folds: int,
    device: str,
    processes: int = 1,
) -> list[Path]:
    """Predict the test images (`images`: `test_images`' folder; `cases`: [(case, original image)]) with
    the ensemble of all folds; write the predictions, on each original image's grid, atomically."""
    with io.atomic_output(out_dir, directory=True) as tmp:
        raw = tmp / "nnunet"
        run(
            [
                program("nnUNetv2_predict"),
                "-i",
                str(images),
                "-o",
                str(raw),
                "-d",
                str(dataset_id),
                "-c",
                configuration,
                "-tr",
                trainer,
                "-f",
                *[str(f) for f in range(n_folds)],
                "-npp",
                str(processes),
                "-nps",
                str(processes),
                "-device",
                resolve_device(device, "nnunet.device"),
                "--disable_progress_bar",
            ],
            environment(paths, processes),
            f"predicting with dataset {dataset_id}",
        )
        for case, image in cases:
            restore_grid(raw / f"{case}.nii.gz", image, tmp / f"{case}.nii.gz")
        shutil.rmtree(raw)
    return sorted(Path(out_dir).glob("*.nii.gz"))


def test_images(*, cases: list[tuple[str, str]], out_dir: str | Path) -> None:
    """The test split's images, named as nnU-Net expects (`<case>_0000.nii.gz`), in `ORIENTATION`."""
    with io.atomic_output(out_dir, directory=True) as tmp:
        for case, image in cases:
            _write_image(image, tmp / f"{case}_0000.nii.gz")


def test_dice(
    *,
    predictions: dict[str, str | Path],
    references: list[tuple[str, str]],
    organ_values: dict[str, int],
    other_labels: str,
) -> pd.DataFrame:
    """Volume Dice per source, test case and organ (predictions: {source: folder})."""
    rows = []
    for case, label in references:
        reference = read_training_label(label, organ_values, "gt", other_labels)
        for source, folder in predictions.items():
            path = Path(folder) / f"{case}.nii.gz"
            prediction, _ = io.load_volume(path, np.uint8)
            if prediction.shape != reference.shape:
                raise SamcrowdError(
                    f"prediction shape {prediction.shape} differs from the label's {reference.shape}", path
                )
            counts = label_counts(reference, prediction, range(1, len(organ_values) + 1))
            for organ, (tp, n_ref, n_pred) in zip(organ_values, counts.values()):
                rows.append(
                    {
                        "source": source,
                        "case": case,
                        "organ": organ,
                        "dice": dice_from_counts(tp, n_ref, n_pred),
                        "n_ref": n_ref,
                        "n_pred": n_pred,
                    }
                )
    return pd.DataFrame(rows, columns=TEST_DICE_COLUMNS)
