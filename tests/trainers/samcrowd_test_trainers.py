"""nnU-Net trainers for tests only (tests point nnUNet_extTrainer here).

`nnUNetTrainer_samcrowdRoundsTest`: samcrowd's tiny trainer for 6 epochs, so that a fold trains in 3
rounds of 2, with nnU-Net's checkpoint every 50 epochs. It stalls once, to let SLURM kill a job in the middle of an epoch: where the folder named
by `STALL_VARIABLE` holds a file `fold_<fold>_epoch_<epoch>`, the third iteration of that epoch removes
the file and sleeps until the job is killed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from samcrowd.nnunet_trainers.samcrowd_nnunet_trainers import nnUNetTrainer_samcrowdTiny

STALL_VARIABLE = "SAMCROWD_TEST_STALL"


class nnUNetTrainer_samcrowdRoundsTest(nnUNetTrainer_samcrowdTiny):
    EPOCHS = 6
    SAVE_EVERY = 50  # nnU-Net's default: between rounds, only SLURM's warning writes a checkpoint
    STALL_ITERATION = 2

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self._iteration = 0

    def train_step(self, batch: dict) -> dict:
        folder = os.environ.get(STALL_VARIABLE)
        if folder and self._iteration == self.STALL_ITERATION:
            flag = Path(folder) / f"fold_{self.fold}_epoch_{self.current_epoch}"
            if flag.exists():
                flag.unlink()
                self.print_to_log_file(f"test: stalling in epoch {self.current_epoch} until the job is killed")
                time.sleep(3600)
        self._iteration += 1
        return super().train_step(batch)
