# Snakemake entry point: paired test-Dice plots.
import pandas as pd

from samcrowd import figures, jobs

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: figures.test_dice_figure(
        dice=pd.read_csv(i.dice, sep="\t"),
        comparison=pd.read_csv(i.comparison, sep="\t"),
        organs=p.organs,
        outs=[o.png, o.svg],
        reference=p.reference,
        dpi=p.dpi,
    ),
)
