# Snakemake entry point: the campaign's status table and coverage.
from samcrowd import campaign, jobs

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: campaign.write_status(
        assignment_path=i.assignment,
        folders=dict(zip(p.annotators, i.folders)),
        manifests=dict(zip(p.cases, i.manifests)),
        labels=dict(zip(p.labelled, i.labels)),
        organ_values=p.organ_values,
        annotations=p.annotations,
        settings=p.settings,
        known_cases=set(p.known_cases),
        images=dict(zip(p.cases, i.images)) if "images" in i.keys() else None,
        out_table=o.table,
        out_coverage=o.coverage,
    ),
)
