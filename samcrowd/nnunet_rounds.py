"""One round of an nnU-Net fold's training, run by `samcrowd.nnunet.train` as a child process.

A fold whose training does not fit in one cluster job trains in rounds (`samcrowd.cluster`): round r
continues from the previous round's checkpoint, trains up to its epoch target and writes the checkpoint
of that epoch; the last round trains to the end, writes nnU-Net's checkpoint_final.pth and validates as
nnUNetv2_train does. One round is the whole training where there is no limit. Every checkpoint written
here is nnU-Net's own format plus a `samcrowd` entry: the random states (Python, NumPy, torch) at the
epoch boundary, so that a training split into rounds gives the weights of an uninterrupted one (with
`nnunet.deterministic`), and where it comes from (training record, training id, epoch, why written).

SLURM's warning signal (`WARNING_SIGNAL`; the profile asks for it minutes before the time limit):
the last epoch boundary, kept in memory, is written at once as checkpoint_latest.pth, so a job that is
killed in the middle of the next epoch loses at most that epoch; at the end of the epoch in progress a
newer checkpoint is written and the job exits with `OUT_OF_TIME`: a retry, or the next run, continues
from it. SIGTERM (the time limit itself, scancel, Snakemake stopping) writes the kept boundary, then ends.
`PROGRESS` in the fold's folder says how far the training is (`samcrowd training-status`).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from samcrowd import cluster
from samcrowd import io as samcrowd_io
from samcrowd.nnunet import PROGRESS, THREADS_VARIABLE, intact

#: SLURM's warning before the time limit: URG, not USR1. SLURM signals every process of the job step,
#: and Snakemake's job process dies of USR1 (measured); URG is ignored by every process that has no
#: handler for it, so only this one acts.
WARNING_SIGNAL = signal.SIGURG
#: The exit status of a round stopped by the warning before its epoch target (its checkpoint is saved).
OUT_OF_TIME = 3
LATEST = "checkpoint_latest.pth"


class _RoundEnd(Exception):
    """Raised at an epoch boundary to leave nnU-Net's training loop (the round's target, or the warning)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def random_states() -> dict:
    import torch

    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict) -> None:
    import torch

    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def boundary(trainer, meta: dict) -> dict:
    """The trainer's checkpoint at the end of its last epoch, on the CPU (nnU-Net's own format through its
    save_checkpoint, plus `meta` and the random states under 'samcrowd')."""
    import torch

    buffer = io.BytesIO()
    trainer.current_epoch -= 1  # nnU-Net stores current_epoch + 1: it saves before on_epoch_end's increment
    try:
        trainer.save_checkpoint(buffer)
    finally:
        trainer.current_epoch += 1
    buffer.seek(0)
    state = torch.load(buffer, map_location="cpu", weights_only=False)
    state["samcrowd"] = {**meta, "epoch": trainer.current_epoch, "rng": random_states()}
    return state


def save(state: dict, path: Path, written: str) -> None:
    """A checkpoint written atomically (a killed job leaves the old file or the new one, never half)."""
    import torch

    state["samcrowd"]["written"] = written
    with samcrowd_io.atomic_output(path) as tmp:
        torch.save(state, tmp)


def meta_of(path: Path) -> dict | None:
    """The samcrowd entry of a checkpoint (None: not written by samcrowd, or damaged)."""
    import torch

    if not path.is_file() or not intact(path):
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state.get("samcrowd")


class Keeper:
    """The last epoch boundary, kept in memory; a thread writes it as checkpoint_latest.pth when SLURM warns
    or ends the job (a signal handler only sets an event: it must not take locks the training holds)."""

    def __init__(self, folder: Path, progress, say):
        self.path = folder / LATEST
        self.progress = progress
        self.say = say
        self.state: dict | None = None
        self.written_epoch: int | None = None
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.done = threading.Event()
        threading.Thread(target=self._wait, daemon=True, name="samcrowd-keeper").start()

    def _wait(self) -> None:
        self.wake.wait()
        self.write("SLURM's time warning (the boundary before the epoch in progress)")
        self.done.set()

    def write(self, why: str) -> int | None:
        with self.lock:
            state = self.state
            if state is None or state["samcrowd"]["epoch"] == self.written_epoch:
                return self.written_epoch
            save(state, self.path, why)
            self.written_epoch = state["samcrowd"]["epoch"]
            self.say(f"wrote {self.path.name} at epoch {self.written_epoch} ({why})")
            self.progress(saved=self.written_epoch)
            return self.written_epoch


def train_round(
    *,
    dataset_id: int,
    configuration: str,
    fold: int,
    trainer_name: str,
    device: str,
    round_number: int,
    n_rounds: int,
    start: Path | None,
    out: Path | None,
    record: dict,
) -> int:
    """Train one round; return the exit status (0, or `OUT_OF_TIME`)."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    if device == "cpu":
        torch.set_num_threads(int(os.environ.get(THREADS_VARIABLE, os.cpu_count() or 1)))
    else:
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    trainer = get_trainer_from_args(str(dataset_id), configuration, fold, trainer_name, device=torch.device(device))
    folder = Path(trainer.output_folder)
    folder.mkdir(parents=True, exist_ok=True)

    def say(message: str) -> None:
        """To the job's log and to nnU-Net's training log of this attempt (kept in the fold's folder)."""
        trainer.print_to_log_file(f"samcrowd: {message}")

    epochs = trainer.num_epochs
    target = cluster.epoch_target(round_number, n_rounds, epochs)
    last = round_number == n_rounds
    job = os.environ.get("SLURM_JOB_ID", "")
    started = time.time()

    # where this round continues from: its own interrupted attempt, else the previous round, else nothing
    begin = meta_of(start) if start else None
    if start and begin is None:
        raise SystemExit(f"samcrowd: {start} is not a checkpoint of samcrowd's rounds, or it is damaged")
    begin_epoch = begin["epoch"] if begin else 0
    training_id = begin["training_id"] if begin else None
    resume, resume_meta = (start, begin) if start else (None, None)
    latest = folder / LATEST
    kept = meta_of(latest)
    if (
        kept is not None
        and kept.get("record") == record
        and (training_id is None or kept.get("training_id") == training_id)
        and begin_epoch < kept["epoch"] <= target
    ):
        resume, resume_meta = latest, kept
    if resume is not None:
        if resume_meta.get("record") != record:
            raise SystemExit(f"samcrowd: {resume} comes from another training (other labels, settings or seed)")
        trainer.load_checkpoint(str(resume))
        training_id = resume_meta["training_id"]
        say(
            f"round {round_number}/{n_rounds} continues from epoch {resume_meta['epoch']} of {epochs} "
            f"({resume.name}, written at {resume_meta.get('written', '?')})"
        )
    else:
        training_id = uuid.uuid4().hex
        say(f"round {round_number}/{n_rounds} starts the training (epoch 0 of {epochs})")
    meta = {"record": record, "training_id": training_id, "round": round_number, "rounds": n_rounds}
    resumable = {"epoch": resume_meta["epoch"] if resume_meta else 0}  # the newest epoch a checkpoint holds

    def progress(state: str = "training", saved: int | None = None) -> None:
        """The fold's PROGRESS record: epochs done and saved, the round, what the job is doing."""
        if saved is not None:
            resumable["epoch"] = saved
        samcrowd_io.write_json(
            folder / PROGRESS,
            {
                "epochs": epochs,
                "epochs_done": trainer.current_epoch,
                "saved_epoch": resumable["epoch"],
                "round": round_number,
                "rounds": n_rounds,
                "target": target,
                "state": state,
                "job": job,
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )

    if resume_meta is not None and resume_meta["epoch"] >= target and not last:
        # an earlier attempt reached this round's target (or the rounds outnumber the epochs): nothing to train
        with samcrowd_io.atomic_output(out) as tmp:
            shutil.copyfile(resume, tmp)
        progress(f"round {round_number}/{n_rounds} done", saved=resume_meta["epoch"])
        return 0
    keeper = Keeper(folder, progress, say)
    warned = threading.Event()

    def on_warning(signum, frame):
        warned.set()
        keeper.wake.set()

    def on_term(signum, frame):
        keeper.wake.set()
        keeper.done.wait(timeout=25)  # within SLURM's default KillWait (30 s) before SIGKILL
        say(f"ended by signal {signum} in epoch {trainer.current_epoch}")
        progress("ended by SLURM or a user (signal)")
        os._exit(128 + signum)

    signal.signal(WARNING_SIGNAL, on_warning)
    signal.signal(signal.SIGTERM, on_term)

    original_start, original_end = trainer.on_train_start, trainer.on_epoch_end
    # nnU-Net's periodic checkpoint_latest.pth is written here instead, with the random states and record
    every, trainer.save_every = trainer.save_every, sys.maxsize

    def on_train_start():
        original_start()
        if resume_meta is not None:  # after nnU-Net's set-up, which draws random numbers of its own
            restore_random_states(resume_meta["rng"])
        keeper.state = boundary(trainer, meta)
        progress()

    def on_epoch_end():
        original_end()
        state = boundary(trainer, meta)
        keeper.state = state
        done = trainer.current_epoch
        if warned.is_set() and done < target:
            keeper.write(f"SLURM's time warning, end of epoch {done}")
            progress("stopped at SLURM's time warning")
            say(
                f"SLURM's time warning: stopped after epoch {done} of {epochs} (round {round_number}/{n_rounds} "
                f"trains to {target}); {LATEST} holds epoch {done}, a retry continues from there"
            )
            raise _RoundEnd(OUT_OF_TIME)
        if done >= target and not last:
            save(state, out, f"end of round {round_number}/{n_rounds}")
            progress(f"round {round_number}/{n_rounds} done", saved=done)
            raise _RoundEnd(0)
        if every and done % every == 0 and done < epochs:
            keeper.write(f"every {every} epochs")
        progress()

    trainer.on_train_start, trainer.on_epoch_end = on_train_start, on_epoch_end
    if torch.cuda.is_available():
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
    try:
        trainer.run_training()
    except _RoundEnd as end:
        _shut_down(trainer)
        say(f"round took {time.time() - started:.0f} s")
        return end.status
    trainer.perform_actual_validation(False)
    progress("finished", saved=epochs)
    say(f"training finished (epoch {epochs}); round took {time.time() - started:.0f} s")
    return 0


def _shut_down(trainer) -> None:
    """Stop the data loaders' worker processes (what nnU-Net's on_train_end does, without its final checkpoint)."""
    for loader in (trainer.dataloader_train, trainer.dataloader_val):
        finish = getattr(loader, "_finish", None)
        if finish is not None:
            finish()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m samcrowd.nnunet_rounds", description=__doc__.splitlines()[0])
    p.add_argument("--dataset-id", type=int, required=True)
    p.add_argument("--configuration", required=True)
    p.add_argument("--fold", type=int, required=True)
    p.add_argument("--trainer", required=True)
    p.add_argument("--device", required=True, choices=["cpu", "cuda"])
    p.add_argument("--round", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--start", type=Path, help="the previous round's checkpoint")
    p.add_argument("--out", type=Path, help="this round's checkpoint (rounds before the last)")
    p.add_argument("--record", type=Path, required=True, help="the training record (samcrowd_training.json)")
    args = p.parse_args(argv)
    if args.round < args.rounds and args.out is None:
        p.error("--out is needed for a round before the last")
    return train_round(
        dataset_id=args.dataset_id,
        configuration=args.configuration,
        fold=args.fold,
        trainer_name=args.trainer,
        device=args.device,
        round_number=args.round,
        n_rounds=args.rounds,
        start=args.start,
        out=args.out,
        record=samcrowd_io.read_json(args.record),
    )


if __name__ == "__main__":
    sys.exit(main())
