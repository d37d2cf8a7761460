"""Scale: how long, how much memory and how many cluster submissions does planning a big study take?

A study of N cases (all annotated: export.splits [train, test]; 80 % train) x 5 organs x A
annotator folders, from a case sheet with faked (empty) NIfTI files: only the DAG is built.
`snakemake -n --quiet` is timed (printing every job would add seconds); a second dry run
through profiles/slurm lists every job and the sbatch submissions (group jobs counted once,
local rules not at all: samcrowd.submissions). Reports jobs, submissions, wall time and the
peak memory of the snakemake process for each N.

`--before REV` runs the same studies, in the same run, on another commit of this repository
(a git worktree; its own samcrowd package first on PYTHONPATH), for before/after tables.

    python bench/scale_dry_run.py [--cases 1000 10000] [--annotators 10] [--before 353c0df]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO

from samcrowd import submissions

#: Commits before localrules were declared submit every job but `all` (a rule without an action
#: never goes to the cluster).
BEFORE_LOCAL_RULES = ("all",)


def local_rules_of(checkout: Path) -> tuple[str, ...]:
    """The local rules a checkout declares (samcrowd.submissions.LOCAL_RULES), else BEFORE_LOCAL_RULES."""
    run = subprocess.run(
        [sys.executable, "-c", "from samcrowd.submissions import LOCAL_RULES; print(' '.join(LOCAL_RULES))"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        cwd=checkout,
    )
    return tuple(run.stdout.split()) if run.returncode == 0 else BEFORE_LOCAL_RULES


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
    for a in range(n_annotators):  # one returned file each: an annotator with none is still out
        (folder / "annotations" / f"ann{a:02d}" / "YOLO_darknet").mkdir(parents=True)
        (folder / "annotations" / f"ann{a:02d}" / "YOLO_darknet" / "case00000_0000.txt").touch()
    config = folder / "scale.yaml"
    config.write_text(
        "data: {source: sheet, sheet: cases.tsv}\n"
        "export: {splits: [train, test]}\n"
        "annotations: {source: folder, folder: annotations}\n"
        "nnunet: {sources: [gt, crowd], folds: 5}\n"
    )
    return config


def dry_run(checkout: Path, folder: Path, config: Path, *args: str) -> tuple[float, float, str]:
    """(seconds, peak MiB of the snakemake process, its output) of one `snakemake -n` of `checkout`."""
    cmd = [
        sys.executable,
        "-c",
        "import resource, sys, runpy; sys.argv = ['snakemake'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('snakemake', run_name='__main__')\n"
        "finally:\n    print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)",
        "-n",
        *args,
        "-s",
        str(checkout / "Snakefile"),
        "-d",
        str(folder),
        "--configfile",
        str(config),
    ]
    env = {**os.environ, "PYTHONPATH": str(checkout)}  # the checkout's own samcrowd package
    start = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=folder, env=env)
    seconds = time.perf_counter() - start
    log = run.stdout + run.stderr
    if run.returncode != 0:
        sys.exit(log[-3000:])
    return seconds, int(re.search(r"PEAK_KIB (\d+)", log).group(1)) / 1024, log


def job_counts(log: str) -> dict[str, int]:
    block = log.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def measure(checkout: Path, n: int, annotators: int, local_rules: tuple[str, ...]) -> dict[str, float]:
    """Jobs, submissions, seconds and peak MiB of planning an n-case study with `checkout`."""
    with tempfile.TemporaryDirectory(prefix="samcrowd-scale-") as tmp:
        folder = Path(tmp)
        config = fake_study(folder, n, annotators)
        seconds, peak, _ = dry_run(checkout, folder, config, "--quiet")  # timed: planning only
        _, _, log = dry_run(checkout, folder, config, "--profile", str(checkout / "profiles" / "slurm"))
    jobs = job_counts(log)
    return {
        "jobs": jobs["total"],
        "masks": jobs["masks"],
        "submissions": sum(submissions.count(log.splitlines(), local_rules).values()),
        "seconds": seconds,
        "peak": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--annotators", type=int, default=10)
    parser.add_argument("--before", help="also plan with this commit (a git worktree), alternating with this one")
    args = parser.parse_args()
    checkouts = {"this": (REPO, submissions.LOCAL_RULES)}
    worktree = None
    if args.before:
        worktree = Path(tempfile.mkdtemp(prefix="samcrowd-before-")) / "checkout"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), args.before], check=True)
        checkouts = {args.before: (worktree, local_rules_of(worktree)), **checkouts}
    print(f"snakemake -n, {args.annotators} annotators, 5 organs, nnU-Net gt+crowd x 5 folds, profiles/slurm")
    print(
        f"{'commit':>8} {'cases':>6} {'jobs':>7} {'masks':>6} {'jobs/(cases x ann)':>19} {'submissions':>12} "
        f"{'seconds':>8} {'peak MiB':>9}"
    )
    results: dict[tuple[str, int], dict[str, float]] = {}
    try:
        for n in args.cases:
            for name, (checkout, local_rules) in checkouts.items():
                r = results[name, n] = measure(checkout, n, args.annotators, local_rules)
                print(
                    f"{name:>8} {n:>6} {r['jobs']:>7} {r['masks']:>6} {r['jobs'] / (n * args.annotators):>19.2f} "
                    f"{r['submissions']:>12} {r['seconds']:>8.1f} {r['peak']:>9.0f}",
                    flush=True,
                )
    finally:
        if worktree is not None:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)], check=True)
    if args.before:
        for n in args.cases:
            ratio = results["this", n]["seconds"] / results[args.before, n]["seconds"]
            print(f"{n} cases: planning time this / {args.before} = {ratio:.2f}")
    sizes = sorted(args.cases)
    for small, big in zip(sizes, sizes[1:]):
        growth = results["this", big]["seconds"] / results["this", small]["seconds"]
        print(f"this commit: {big} cases take {growth:.1f} x the time of {small} ({big / small:.0f} x the cases)")
    print("targets: 1,000 cases <= 0.35 x before and <= 1,000 submissions; 10,000 cases <= 11 x 1,000, < 4096 MiB")


if __name__ == "__main__":
    main()
