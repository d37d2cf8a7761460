# Snakemake entry point: one annotator's hand-out package.
from samcrowd import campaign, jobs

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: campaign.write_package(
        annotator=snakemake.wildcards.annotator,
        assignment=campaign.read_assignment(i.assignment),
        slices_dirs=dict(zip(p.cases, i.slices)),
        organs=p.organs,
        instructions=i.instructions,
        out_dir=o.folder,
        zip_path=o.zip if "zip" in o.keys() else None,
    ),
)
