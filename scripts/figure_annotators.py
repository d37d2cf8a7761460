# Snakemake entry point: annotator reliability plot.
import pandas as pd

from samcrowd import figures, jobs

o, p = snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: figures.reliability_figure(pd.read_csv(snakemake.input[0], sep="\t"), p.threshold, [o.png, o.svg], p.dpi),
)
