# Snakemake entry point: one annotator's OpenLabeling files for one case -> box table.
from samcrowd import boxes, jobs

p = snakemake.params
jobs.run(
    snakemake,
    lambda: boxes.write_case_table(
        folder=snakemake.input.folder,
        annotator=snakemake.wildcards.annotator,
        case=snakemake.wildcards.case,
        manifest_path=snakemake.input.manifest,
        out=snakemake.output[0],
        naming=p.naming,
        organs=p.organs,
        class_overrides=p.classes,
        known_cases=set(p.known_cases),
    ),
)
