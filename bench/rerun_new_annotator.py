"""Incremental rerun: a finished four-annotator study of the embedded default gets a fifth
annotator; how long does the rerun take compared with the first run, and what does it run?

    python bench/rerun_new_annotator.py [--cores 2] [--segmenter random_walker|box|tiny-sam]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, snakemake_command


def snakemake(workdir: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    run = subprocess.run(
        snakemake_command(workdir, "--configfile", str(REPO / "config.yaml"), *args),
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        sys.exit(run.stderr[-3000:])
    return time.perf_counter() - start, run.stdout + run.stderr


def job_counts(log: str) -> dict[str, int]:
    block = log.split("Job stats:", 1)[1] if "Job stats:" in log else ""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M) if m[1] != "total"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="2")
    parser.add_argument("--segmenter", default="random_walker", choices=["random_walker", "box", "tiny-sam"])
    parser.add_argument("--repeat", type=int, default=3, help="fresh studies to time (the median is reported)")
    args = parser.parse_args()
    results = [one_study(args) for _ in range(args.repeat)]
    firsts, reruns = [r[0] for r in results], [r[1] for r in results]
    log1, plan = results[-1][2], results[-1][3]
    print(f"embedded default, segmenter {args.segmenter}, --cores {args.cores}, median of {args.repeat} fresh studies")
    print(f"first run (4 annotators): {statistics.median(firsts):7.1f} s  jobs {job_counts(log1)}")
    print(f"rerun (+ann05):           {statistics.median(reruns):7.1f} s  jobs {job_counts(plan)}")
    ratios = [r / f for f, r in zip(firsts, reruns)]
    print(
        f"wall-time ratio rerun/first: median {statistics.median(ratios):.3f} (runs: "
        f"{', '.join(f'{x:.3f}' for x in ratios)}; target <= 0.25)"
    )


def one_study(args) -> tuple[float, float, str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        extra = []
        if args.segmenter == "tiny-sam":
            import torch

            from samcrowd.segmenters import build_test_sam

            torch.manual_seed(0)
            torch.save(build_test_sam().state_dict(), work / "tiny.pth")
            (work / "seg.yaml").write_text(
                f"segmenter: {{kind: sam, model_type: test_tiny, checkpoint: {work / 'tiny.pth'}, device: cpu}}\n"
            )
            extra = [str(work / "seg.yaml")]
        elif args.segmenter == "box":
            (work / "seg.yaml").write_text("segmenter: {kind: box}\n")
            extra = [str(work / "seg.yaml")]
        configs = ["--configfile", str(REPO / "config.yaml"), *extra]
        first, log1 = snakemake(work, "--cores", args.cores, *configs)
        (work / "fifth.yaml").write_text("crowd: {annotators: {ann05: careful}}\n")
        configs += [str(work / "fifth.yaml")]
        _, plan = snakemake(work, "-n", *configs)
        rerun, _ = snakemake(work, "--cores", args.cores, *configs)
    return first, rerun, log1, plan


if __name__ == "__main__":
    main()
