"""nnU-Net trainers of samcrowd's own: few iterations and a narrow network, for CPUs.

nnU-Net finds them through the `nnUNet_extTrainer` environment variable, which the workflow
points at this folder for training and prediction alike. They change how long, how wide and
the optimiser, never the data pipeline, the loss or the inference; real studies use nnU-Net's
default `nnUNetTrainer`. The optimiser is AdamW (lr 3e-3) under nnU-Net's poly schedule:
nnU-Net's SGD with momentum 0.99 is made for 250,000 iterations, and in the demo's 600 it
learned only the liver (test Dice 0.93, the four other organs 0), where AdamW learned all
five (0.93-0.97) in the same time in one unseeded run (600 iterations stay noisy: README). Checkpoints are written every epoch so a killed job
resumes (`--c`). They seed Python, NumPy and torch (SEED + fold), so with augmentation in the
training process (`nnunet.deterministic`) two runs train identical weights.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans


class _SamcrowdShortTrainer(nnUNetTrainer):
    """The shared recipe: class constants set the budget and width; subclasses name a budget."""

    EPOCHS = 2
    ITERATIONS = 4
    VALIDATION_ITERATIONS = 1
    WIDTH_DIVISOR = 8  # features per stage divided by this (32 -> 4 ... 320 -> 40)
    BATCH_SIZE = None  # None: the plans' batch size
    LEARNING_RATE = 3e-3
    SEED = 12345  # + fold: weight initialisation and patch sampling repeat from run to run

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        seed = self.SEED + int(fold) if str(fold).isdigit() else self.SEED
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.num_epochs = self.EPOCHS
        self.num_iterations_per_epoch = self.ITERATIONS
        self.num_val_iterations_per_epoch = self.VALIDATION_ITERATIONS
        self.save_every = 1
        self.initial_lr = self.LEARNING_RATE

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def _set_batch_size_and_oversample(self):
        super()._set_batch_size_and_oversample()
        if self.BATCH_SIZE is not None:
            self.batch_size = min(self.batch_size, self.BATCH_SIZE)

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision=True):
        """nnU-Net's planned U-Net with fewer features per stage (same stages, kernels, strides)."""
        kwargs = dict(configuration_manager.network_arch_init_kwargs)
        if "features_per_stage" in kwargs:
            kwargs["features_per_stage"] = [max(2, int(f) // cls.WIDTH_DIVISOR) for f in kwargs["features_per_stage"]]
        return get_network_from_plans(configuration_manager.network_arch_class_name, kwargs,
                                      configuration_manager.network_arch_init_kwargs_req_import,
                                      num_input_channels, num_output_channels, allow_init=True,
                                      deep_supervision=enable_deep_supervision)


class nnUNetTrainer_samcrowdTiny(_SamcrowdShortTrainer):
    """For tests: 2 epochs of 4 iterations, 1/8 of the features."""


class nnUNetTrainer_samcrowdDemo(_SamcrowdShortTrainer):
    """For the embedded demo on a CPU: 15 epochs of 40 iterations, batches of at most 6,
    1/4 of the features (about 2 minutes per 2d fold of the phantom on 2 cores)."""

    EPOCHS = 15
    ITERATIONS = 40
    VALIDATION_ITERATIONS = 2
    WIDTH_DIVISOR = 4
    BATCH_SIZE = 6
