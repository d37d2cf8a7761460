# Snakemake entry point: axial/coronal/sagittal overlays of one case.
from samcrowd import figures, jobs

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: figures.overlay_from_files(
        i.image,
        i.label,
        p.organ_values,
        p.other_labels,
        dict(zip(p.names, i.layers)),
        p.case,
        [o.png, o.svg],
        p.dpi,
        p.level,
        p.width,
    ),
)
