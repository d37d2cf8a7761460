# Snakemake entry point: crowd labels' slice vs volume Dice.
import pandas as pd

from samcrowd import figures, jobs

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: figures.annotation_figure(
        pd.read_csv(i.slices, sep="\t"), pd.read_csv(i.volumes, sep="\t"), p.organs, [o.png, o.svg], p.dpi
    ),
)
