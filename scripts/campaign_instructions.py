# Snakemake entry point: the annotators' instruction sheet.
from samcrowd import campaign, jobs

i, p = snakemake.input, snakemake.params
jobs.run(
    snakemake,
    lambda: campaign.write_instructions(
        manifests=list(i.manifests),
        labels=dict(zip(p.labelled, i.labels)),
        slices_dirs=dict(zip(p.cases, i.slices)),
        organ_values=p.organ_values,
        assignment=i.assignment,
        out=snakemake.output[0],
        stride=p.stride,
    ),
)
