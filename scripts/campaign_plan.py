# Snakemake entry point: the campaign plan (assignment.tsv).
from samcrowd import campaign, jobs

i, p = snakemake.input, snakemake.params
jobs.run(
    snakemake,
    lambda: campaign.write_plan(
        manifests=list(i.manifests),
        images=dict(zip(p.cases, i.images)) if "images" in i.keys() else {},
        labels=dict(zip(p.labelled, i.labels)),
        organ_values=p.organ_values,
        annotators=p.annotators,
        settings=p.settings,
        out=snakemake.output[0],
    ),
)
