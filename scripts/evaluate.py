# Snakemake entry point: collect the Dice tables and write Table 1 (left).
from samcrowd import evaluation, jobs

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: evaluation.collect(
        list(i.slices),
        list(i.volumes),
        list(i.exclusions),
        p.organs,
        p.no_label,
        o.slices,
        o.volumes,
        o.exclusions,
        o.table,
        o.markdown,
    ),
)
