"""Scale: how long and how much memory does planning (`snakemake -n`) take for a big study?

A study of N cases (all annotated: export.splits [train, test]; 80 % train) x 5 organs x A
annotator folders, from a case sheet with faked (empty) NIfTI files: only the DAG is built.
`snakemake -n --quiet` is timed (printing 24,000 job descriptions would add about 8 s); a
second dry run lists the job counts. Reports jobs, wall time and the peak memory of the
snakemake process for each N, and checks that the job count stays linear in cases x
annotators (no per-slice or per-box jobs).

    python bench/scale_dry_run.py [--cases 100 1000] [--annotators 10]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO


def fake_study(folder: Path, n_cases: int, n_annotators: int) -> Path:
    """cases.tsv, empty image/label files, empty annotator folders and a config; the config path."""
    (folder / "data").mkdir()
    rows = ["case\timage\tlabel\tsplit"]
    n_train = int(round(n_cases * 0.8))
    for i in range(n_cases):
        case = f"case{i:05d}"
        for kind in ("img", "seg"):
            (folder / "data" / f"{case}_{kind}.nii.gz").touch()
        split = "train" if i < n_train else "test"
        rows.append(f"{case}\tdata/{case}_img.nii.gz\tdata/{case}_seg.nii.gz\t{split}")
    (folder / "cases.tsv").write_text("\n".join(rows) + "\n")
    for a in range(n_annotators):
        (folder / "annotations" / f"ann{a:02d}").mkdir(parents=True)
    config = folder / "scale.yaml"
    config.write_text(
        "data: {source: sheet, sheet: cases.tsv}\n"
        "export: {splits: [train, test]}\n"
        "annotations: {source: folder, folder: annotations}\n"
        "nnunet: {sources: [gt, crowd], folds: 5}\n"
    )
    return config


def dry_run(folder: Path, config: Path, quiet: bool) -> tuple[float, float, str]:
    """(seconds, peak MiB of the snakemake process, its output) of one `snakemake -n`."""
    cmd = [
        sys.executable,
        "-c",
        "import resource, sys, runpy; sys.argv = ['snakemake'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('snakemake', run_name='__main__')\n"
        "finally:\n    print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)",
        "-n",
        *(["--quiet"] if quiet else ["--quiet", "rules", "reason", "host"]),
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(folder),
        "--configfile",
        str(config),
    ]
    start = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=folder)
    seconds = time.perf_counter() - start
    log = run.stdout + run.stderr
    if run.returncode != 0:
        sys.exit(log[-3000:])
    return seconds, int(re.search(r"PEAK_KIB (\d+)", log).group(1)) / 1024, log


def job_counts(log: str) -> dict[str, int]:
    block = log.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--annotators", type=int, default=10)
    args = parser.parse_args()
    print(f"snakemake -n --quiet, {args.annotators} annotators, 5 organs, nnU-Net gt+crowd x 5 folds")
    print(
        f"{'cases':>6} {'jobs':>7} {'boxes':>6} {'masks':>6} {'jobs/(cases x ann)':>19} {'seconds':>8} {'peak MiB':>9}"
    )
    for n in args.cases:
        with tempfile.TemporaryDirectory(prefix="samcrowd-scale-") as tmp:
            folder = Path(tmp)
            config = fake_study(folder, n, args.annotators)
            seconds, peak, _ = dry_run(folder, config, quiet=True)  # timed: planning only
            jobs = job_counts(dry_run(folder, config, quiet=False)[2])  # again, listing the job counts
        per = jobs["total"] / (n * args.annotators)
        print(
            f"{n:>6} {jobs['total']:>7} {jobs['boxes']:>6} {jobs['masks']:>6} {per:>19.2f} {seconds:>8.1f} {peak:>9.0f}"
        )
        expected_boxes = n * args.annotators
        if jobs["boxes"] != expected_boxes or jobs["masks"] != expected_boxes:
            sys.exit(f"boxes/masks jobs are not one per case and annotator ({expected_boxes})")
    print("targets: under 30 s and 2048 MiB at 1,000 cases")


if __name__ == "__main__":
    main()
