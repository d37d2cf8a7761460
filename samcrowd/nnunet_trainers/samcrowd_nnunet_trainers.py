"""nnU-Net trainers of samcrowd's own: few iterations and a narrow network, for CPUs.

nnU-Net finds them through the `nnUNet_extTrainer` environment variable, which the workflow
points at this folder for training and prediction alike. They change how long, how wide, the
optimiser, foreground sampling and two augmentations (rotation range, mirroring: see
ROTATION_DEGREES), never the loss or the rest of the data pipeline; real studies use nnU-Net's
default `nnUNetTrainer`. The optimiser is AdamW (lr 1e-2) under nnU-Net's poly schedule:
nnU-Net's SGD with momentum 0.99 is made for 250,000 iterations, and in the demo's 600 it learned
only the liver (test Dice 0.93, the four other organs 0). Every sample is drawn around a
foreground class (nnU-Net draws a third so): with AdamW at lr 3e-3 and nnU-Net's third, the
demo's crowd-label model never switched the left kidney on in 600 iterations (validation pseudo
Dice 0 in every epoch of both folds, test Dice 0.00); at lr 1e-2 with every sample on foreground,
all five organs were on by epoch 6 of 15. Checkpoints are written every epoch so a killed job
resumes (`--c`); the fold's validation cases are not predicted after training. They seed Python,
NumPy and torch with `nnunet.seed` + fold (passed in the environment by `samcrowd.nnunet.train`),
so with `nnunet.deterministic` (augmentation in the training process, torch on one thread) two
runs train identical weights. They use the job's threads (`THREADS_VARIABLE`), not every core
(nnUNetv2_train's CPU default). Why one thread for repeatable models: several threads on a busy CPU
round differently from run to run (measured in docs/reproducibility.md, "Repeatability").
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from samcrowd.nnunet import SEED_VARIABLE, THREADS_VARIABLE


class _SamcrowdShortTrainer(nnUNetTrainer):
    """The shared recipe: class constants set the budget and width; subclasses name a budget."""

    EPOCHS = 2
    ITERATIONS = 4
    VALIDATION_ITERATIONS = 1
    WIDTH_DIVISOR = 8  # features per stage divided by this (32 -> 4 ... 320 -> 40)
    BATCH_SIZE = None  # None: the plans' batch size
    LEARNING_RATE = 1e-2
    FOREGROUND_SAMPLES = 1.0  # share of each batch drawn around a foreground class (nnU-Net: 0.33)
    SAVE_EVERY = 1  # epochs between checkpoints (nnU-Net: 50)
    #: The study's organs are lateral (right and left kidney). Mirroring, or rotating a 2d slice by up
    #: to 180 degrees (nnU-Net's 2d default for square patches), shows a right kidney where a left one
    #: belongs; a short training then fails to tell them apart (the demo's crowd-label model reached a
    #: right-kidney test Dice of 0.01-0.26 in seeded runs). These trainers rotate by at most this many
    #: degrees and never mirror, in training or at inference (which also makes inference 4x cheaper).
    ROTATION_DEGREES = 15

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008 (nnUNetTrainer's own signature)
    ):
        super().__init__(plans, configuration, fold, dataset_json, device)
        seed = int(os.environ.get(SEED_VARIABLE, "0")) + (int(fold) if str(fold).isdigit() else 0)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        if os.environ.get(THREADS_VARIABLE):
            torch.set_num_threads(int(os.environ[THREADS_VARIABLE]))
        self.print_to_log_file(f"samcrowd: seed {seed}, torch on {torch.get_num_threads()} thread(s)")
        self.num_epochs = self.EPOCHS
        self.num_iterations_per_epoch = self.ITERATIONS
        self.num_val_iterations_per_epoch = self.VALIDATION_ITERATIONS
        self.save_every = self.SAVE_EVERY
        self.initial_lr = self.LEARNING_RATE
        self.oversample_foreground_percent = self.FOREGROUND_SAMPLES

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        _, dummy_2d, _, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        rotation = (-np.deg2rad(self.ROTATION_DEGREES), np.deg2rad(self.ROTATION_DEGREES))
        patch_size = self.configuration_manager.patch_size
        initial_patch_size = get_patch_size(patch_size, rotation, rotation, rotation, (0.85, 1.25))
        if dummy_2d:
            initial_patch_size[0] = patch_size[0]
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None

    def perform_actual_validation(self, save_probabilities: bool = False):
        """Skip predicting each fold's validation cases after training: the workflow never reads them
        (it scores the test split), and on a CPU they cost about 20 s per fold of the demo."""
        self.print_to_log_file(
            "samcrowd: validation of the fold's held-out cases skipped (the workflow scores the test split)"
        )

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def _set_batch_size_and_oversample(self):
        super()._set_batch_size_and_oversample()
        if self.BATCH_SIZE is not None:
            self.batch_size = min(self.batch_size, self.BATCH_SIZE)

    @classmethod
    def build_network_architecture(
        cls, plans_manager, configuration_manager, num_input_channels, num_output_channels, enable_deep_supervision=True
    ):
        """nnU-Net's planned U-Net with fewer features per stage (same stages, kernels, strides)."""
        kwargs = dict(configuration_manager.network_arch_init_kwargs)
        if "features_per_stage" in kwargs:
            kwargs["features_per_stage"] = [max(2, int(f) // cls.WIDTH_DIVISOR) for f in kwargs["features_per_stage"]]
        return get_network_from_plans(
            configuration_manager.network_arch_class_name,
            kwargs,
            configuration_manager.network_arch_init_kwargs_req_import,
            num_input_channels,
            num_output_channels,
            allow_init=True,
            deep_supervision=enable_deep_supervision,
        )


class nnUNetTrainer_samcrowdTiny(_SamcrowdShortTrainer):
    """For tests: 2 epochs of 4 iterations, 1/8 of the features."""


class nnUNetTrainer_samcrowdDemo(_SamcrowdShortTrainer):
    """For the embedded demo on a CPU: 15 epochs of 40 iterations, batches of at most 6,
    1/4 of the features (about 2 minutes per 2d fold of the demo phantom on 2 cores)."""

    EPOCHS = 15
    ITERATIONS = 40
    VALIDATION_ITERATIONS = 2
    WIDTH_DIVISOR = 4
    BATCH_SIZE = 6
