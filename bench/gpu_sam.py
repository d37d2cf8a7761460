"""GPU check: SAM-family image-encoder throughput, fp32 vs bf16 autocast, by batch size.

Random weights run exactly as fast as real ones, so no checkpoint is needed. Run it on a
GPU machine (the embed stage's hardware); on a CPU only the tiny test SAM and LiteMedSAM are
sensible (LiteMedSAM on a CPU: bench/litemedsam_cpu.py compares it with OpenVINO).

    python bench/gpu_sam.py                        # ViT-H on CUDA, fp32 and bf16, batches 1 2 4 8
    python bench/gpu_sam.py --model-type vit_b --batches 1 4 16
    python bench/gpu_sam.py --model-type litemedsam --batches 1 8 32
    python bench/gpu_sam.py --tiny --device cpu    # smoke run of this script without a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time

import torch

from samcrowd import litemedsam
from samcrowd.segmenters import build_sam


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-type", default="vit_h", choices=["vit_h", "vit_l", "vit_b", "litemedsam"])
    parser.add_argument("--tiny", action="store_true", help="the small test SAM instead of --model-type")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--iters", type=int, default=10, help="timed forward passes per setting (after 2 warm-ups)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_sam.py: no CUDA device here (use --tiny --device cpu for a smoke run)")
    if device.type == "cpu" and not (args.tiny or args.model_type == "litemedsam"):
        sys.exit("gpu_sam.py: a full SAM encoder on the CPU takes minutes per image; use --tiny on the CPU")
    torch.manual_seed(0)
    name = "test_tiny" if args.tiny else args.model_type
    if name == "litemedsam":
        model, size = litemedsam.build().to(device).eval(), litemedsam.INPUT_SIZE
    else:
        model = build_sam(name).to(device).eval()
        size = model.image_encoder.img_size
    print(
        f"{name} image encoder ({sum(p.numel() for p in model.image_encoder.parameters()) / 1e6:.1f} M parameters), "
        f"input {size}x{size}, device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
        f"torch {torch.__version__}, random weights"
    )
    print(f"{'precision':>9} {'batch':>6} {'ms/batch':>10} {'images/s':>10} {'peak GiB':>9}")
    baseline = None
    for precision in args.precisions:
        if precision != "fp32" and device.type != "cuda":
            print(f"{precision:>9}: autocast needs CUDA, skipped on {device.type}")
            continue
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        for batch in args.batches:
            x = torch.randn(batch, 3, size, size, device=device)
            autocast = torch.autocast("cuda", dtype=dtype) if dtype else contextlib.nullcontext()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times = []
            try:
                with torch.inference_mode(), autocast:
                    for i in range(args.iters + 2):
                        if device.type == "cuda":
                            torch.cuda.synchronize(device)
                        start = time.perf_counter()
                        model.image_encoder(x)
                        if device.type == "cuda":
                            torch.cuda.synchronize(device)
                        if i >= 2:
                            times.append(time.perf_counter() - start)
            except torch.OutOfMemoryError:
                print(f"{precision:>9} {batch:>6} {'out of memory':>21}")
                torch.cuda.empty_cache()
                continue
            ms = statistics.median(times) * 1000
            rate = batch / (ms / 1000)
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
            baseline = baseline or rate
            print(
                f"{precision:>9} {batch:>6} {ms:>10.1f} {rate:>10.1f} {peak:>9.2f}   x{rate / baseline:.2f} vs fp32 batch 1"
            )


if __name__ == "__main__":
    main()
