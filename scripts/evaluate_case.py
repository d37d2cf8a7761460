# Snakemake entry point: Dice of one case's crowd labels against its expert label.
from samcrowd import evaluation, jobs
from samcrowd.masks import mask_files

i, o, p = snakemake.input, snakemake.output, snakemake.params
case = snakemake.wildcards.case
files = {a: mask_files(folder, case) for a, folder in zip(p.annotators, i.masks)}
jobs.run(
    snakemake,
    lambda: evaluation.evaluate_case_files(
        case=case,
        label=i.label,
        organ_values=p.organ_values,
        manifest=i.manifest,
        masks={a: (f["volume"], f["coverage"]) for a, f in files.items()},
        stacked=i.stacked,
        crowd=i.crowd if p.completion else None,
        fusion_table=i.fusion,
        out_slices=o.slices,
        out_volumes=o.volumes,
        out_exclusions=o.exclusions,
        other_labels=p.other_labels,
    ),
)
