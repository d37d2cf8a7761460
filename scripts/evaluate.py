# Snakemake entry point: collect the Dice tables and write Table 1 (left).
from samcrowd import evaluation, jobs

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: evaluation.collect(
        slice_paths=list(i.slices),
        volume_paths=list(i.volumes),
        exclusion_paths=list(i.exclusions),
        organs=p.organs,
        no_label=p.no_label,
        out_slices=o.slices,
        out_volumes=o.volumes,
        out_exclusions=o.exclusions,
        out_table=o.table,
        out_markdown=o.markdown,
    ),
)
