"""Does the demo tell the same story from one seed to the next? The embedded default study run
with `nnunet.seed` = `crowd.seed` = each seed; per organ and label source, the mean test Dice of
each run, and their mean and SD (sample SD) across seeds.

The first seed runs the whole study; each further seed starts from a copy of the previous run's
folder, so Snakemake reruns only what the seeds change (the crowd, its masks and labels, every
nnU-Net model), never the phantom, the export or the image encoder.

    python bench/demo_seeds.py [--seeds 0 1 2] [--workdir /tmp/samcrowd-seeds] [--max-sd 0.05]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from _common import REPO, snakemake_command


def run_seed(folder: Path, seed: int, cores: str) -> float:
    """Run the demo in `folder` with both seeds set to `seed`; its wall time in seconds."""
    seeds = folder / "seeds.yaml"
    seeds.write_text(f"crowd: {{seed: {seed}}}\nnnunet: {{seed: {seed}}}\n")
    command = snakemake_command(
        folder,
        "--profile",
        str(REPO / "profiles" / "local"),
        "--cores",
        cores,
        "--configfile",
        str(REPO / "config.yaml"),
        str(seeds),
    )
    start = time.perf_counter()
    with open(folder / "snakemake.log", "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    if done.returncode != 0:
        sys.exit(f"demo_seeds.py: seed {seed} failed, see {folder / 'snakemake.log'}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/samcrowd-seeds"))
    parser.add_argument("--cores", default="all")
    parser.add_argument("--max-sd", type=float, default=0.05, help="the stability target per organ and source")
    args = parser.parse_args()
    means, walls, previous = {}, {}, None
    for seed in args.seeds:
        folder = args.workdir / f"seed{seed}"
        if not (folder / "results/tables/test_dice.tsv").exists():
            if previous is not None and not folder.exists():
                shutil.copytree(previous, folder, symlinks=True)  # copy2 keeps times: nothing looks newer
            folder.mkdir(parents=True, exist_ok=True)
            walls[seed] = run_seed(folder, seed, args.cores)
        dice = pd.read_csv(folder / "results/tables/test_dice.tsv", sep="\t")
        means[seed] = dice.groupby(["source", "organ"], sort=False).dice.mean()
        previous = folder
    table = pd.DataFrame(means)
    table["mean"], table["sd"] = table.mean(axis=1), table[list(means)].std(axis=1, ddof=1)
    print(f"demo test Dice per organ (mean over test cases) for seeds {args.seeds}; SD across seeds (sample SD)")
    print(table.round(3).to_string())
    for seed, wall in walls.items():
        print(f"seed {seed}: {wall / 60:.1f} min wall ({'whole study' if seed == args.seeds[0] else 'rerun'})")
    worst = table["sd"].idxmax()
    verdict = "within" if table["sd"].max() <= args.max_sd else "ABOVE"
    print(f"largest SD {table['sd'].max():.3f} ({worst[0]}, {worst[1]}): {verdict} the target {args.max_sd}")


if __name__ == "__main__":
    main()
