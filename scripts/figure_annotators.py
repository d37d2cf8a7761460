# Snakemake entry point: annotator reliability plot.
import pandas as pd

from samcrowd import figures, jobs

o, p = snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: figures.reliability_figure(
        quality=pd.read_csv(snakemake.input[0], sep="\t"), threshold=p.threshold, outs=[o.png, o.svg], dpi=p.dpi
    ),
)
