# Snakemake entry point: crowd labels' slice vs volume Dice.
import pandas as pd

from samcrowd import figures, jobs

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: figures.annotation_figure(
        slices=pd.read_csv(i.slices, sep="\t"),
        volumes=pd.read_csv(i.volumes, sep="\t"),
        organs=p.organs,
        outs=[o.png, o.svg],
        dpi=p.dpi,
    ),
)
