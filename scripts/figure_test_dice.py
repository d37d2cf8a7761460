# Snakemake entry point: paired test-Dice plots.
import pandas as pd

from samcrowd import figures, jobs

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: figures.test_dice_figure(
        pd.read_csv(i.dice, sep="\t"), pd.read_csv(i.comparison, sep="\t"), p.organs, [o.png, o.svg], p.reference, p.dpi
    ),
)
