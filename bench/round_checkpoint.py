"""What keeping the last epoch boundary costs a training in rounds, for nnU-Net's real 3d_fullres network.

samcrowd.nnunet_rounds keeps a copy of the checkpoint at each epoch boundary in memory (nnU-Net's
save_checkpoint into a buffer, read back on the CPU), so that SLURM's warning can write it at once.
This builds nnU-Net's default 3d_fullres U-Net (PlainConvUNet, 6 stages, 32 to 320 features, as
planned for abdominal CT) with its SGD optimiser after one step (momentum buffers filled), and times,
in one run, the in-memory boundary against writing the same checkpoint to a file (what nnU-Net does
every 50 epochs, and the warning once). Medians of `--repeats`; the CPU is named beside the figures.

    python bench/round_checkpoint.py [--repeats 5] [--folder /scratch/x]
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn


def cpu_name() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def network_and_optimiser() -> tuple[nn.Module, torch.optim.Optimizer]:
    """nnU-Net's 3d_fullres default: PlainConvUNet, 6 stages, 2 convolutions each, instance norm."""
    network = PlainConvUNet(
        input_channels=1,
        n_stages=6,
        features_per_stage=[32, 64, 128, 256, 320, 320],
        conv_op=nn.Conv3d,
        kernel_sizes=[[3, 3, 3]] * 6,
        strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]],
        n_conv_per_stage=[2] * 6,
        num_classes=6,
        n_conv_per_stage_decoder=[2] * 5,
        conv_bias=True,
        norm_op=nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=nn.LeakyReLU,
        nonlin_kwargs={"inplace": True},
        deep_supervision=True,
    )
    optimiser = torch.optim.SGD(network.parameters(), lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)
    for p in network.parameters():  # one step fills the momentum buffers, as after the first iteration
        p.grad = torch.zeros_like(p)
    optimiser.step()
    return network, optimiser


def median_seconds(work, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--folder", type=Path, help="where the checkpoint file is written (default: a temporary folder)")
    args = p.parse_args()
    torch.set_num_threads(1)
    network, optimiser = network_and_optimiser()
    checkpoint = {
        "network_weights": network.state_dict(),
        "optimizer_state": optimiser.state_dict(),
        "current_epoch": 1,
    }
    parameters = sum(p.numel() for p in network.parameters())

    def boundary() -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        buffer.seek(0)
        torch.load(buffer, map_location="cpu", weights_only=False)

    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        path = Path(folder) / "checkpoint_latest.pth"

        def write() -> None:
            torch.save(checkpoint, path)

        written = median_seconds(write, args.repeats)
        size_mb = path.stat().st_size / 1e6
        kept = median_seconds(boundary, args.repeats)
    print(f"CPU: {cpu_name()}; torch {torch.__version__}, 1 thread; medians of {args.repeats}")
    print(f"nnU-Net 3d_fullres PlainConvUNet: {parameters / 1e6:.1f} M parameters, checkpoint {size_mb:.0f} MB")
    print(f"epoch boundary kept in memory (serialise + read back): {kept:.2f} s per epoch")
    print(f"checkpoint written to {Path(folder).parent}: {written:.2f} s; kept / written = {kept / written:.2f}")


if __name__ == "__main__":
    main()
