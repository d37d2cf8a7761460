# Snakemake entry point: Dice of one case's crowd labels against its expert label.
from samcrowd import evaluation, jobs

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: evaluation.evaluate_case_files(
        snakemake.wildcards.case,
        i.label,
        p.organ_values,
        i.manifest,
        {a: (v, c) for a, v, c in zip(p.annotators, i.volumes, i.coverage)},
        i.stacked,
        i.crowd if p.completion else None,
        i.fusion,
        o.slices,
        o.volumes,
        o.exclusions,
        p.other_labels,
    ),
)
