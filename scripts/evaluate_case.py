# Snakemake entry point: Dice of one case's crowd labels against its expert label.
from samcrowd import evaluation, jobs

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: evaluation.evaluate_case_files(
        case=snakemake.wildcards.case,
        label=i.label,
        organ_values=p.organ_values,
        manifest=i.manifest,
        masks={a: (v, c) for a, v, c in zip(p.annotators, i.volumes, i.coverage)},
        stacked=i.stacked,
        crowd=i.crowd if p.completion else None,
        fusion_table=i.fusion,
        out_slices=o.slices,
        out_volumes=o.volumes,
        out_exclusions=o.exclusions,
        other_labels=p.other_labels,
    ),
)
