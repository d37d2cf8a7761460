# Snakemake entry point: annotator reliability without an expert.
from samcrowd import quality, workflow

i, p = snakemake.input, snakemake.params
workflow.run(
    snakemake,
    lambda: quality.write_quality(p.pairs, list(i.tables), list(i.volumes), list(i.coverage),
                                  dict(zip(p.cases, i.manifests)), p.organs, snakemake.output[0], p.method,
                                  p.absent, p.threshold),
)
