# Snakemake entry point: export a case's axial slices as PNGs with a manifest.
from samcrowd import export, jobs

p = snakemake.params
jobs.run(
    snakemake,
    lambda: export.export_case(
        case=snakemake.wildcards.case,
        image_path=snakemake.input.image,
        out_dir=snakemake.output.slices,
        manifest_path=snakemake.output.manifest,
        level=p.level,
        width=p.width,
        every=p.every,
        body_only=p.body_only,
    ),
)
