# Snakemake entry point: annotator reliability without an expert.
from samcrowd import jobs, quality

i, p = snakemake.input, snakemake.params
jobs.run(
    snakemake,
    lambda: quality.write_quality(
        pairs=p.pairs,
        tables=list(i.tables),
        volumes=list(i.volumes),
        coverage=list(i.coverage),
        manifests=dict(zip(p.cases, i.manifests)),
        organs=p.organs,
        out=snakemake.output[0],
        method=p.method,
        absent=p.absent,
        threshold=p.threshold,
    ),
)
