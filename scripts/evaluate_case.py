# Snakemake entry point: Dice of one case's crowd labels against its expert label.
from samcrowd import evaluation, jobs
from samcrowd.masks import case_masks

i, o, p = snakemake.input, snakemake.output, snakemake.params
case = snakemake.wildcards.case
jobs.run(
    snakemake,
    lambda: evaluation.evaluate_case_files(
        case=case,
        label=i.label,
        organ_values=p.organ_values,
        manifest=i.manifest,
        masks=case_masks(annotators=p.annotators, folders=list(i.masks), case=case),
        stacked=i.stacked,
        crowd=i.crowd if p.completion != "none" else None,
        fusion_table=i.fusion,
        out_slices=o.slices,
        out_volumes=o.volumes,
        out_exclusions=o.exclusions,
        other_labels=p.other_labels,
    ),
)
