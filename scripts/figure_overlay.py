# Snakemake entry point: axial/coronal/sagittal overlays of one case.
from samcrowd import figures, jobs

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: figures.overlay_from_files(
        image=i.image,
        label=i.label,
        organ_values=p.organ_values,
        other_labels=p.other_labels,
        layers=dict(zip(p.names, i.layers)),
        case=p.case,
        outs=[o.png, o.svg],
        dpi=p.dpi,
        level=p.level,
        width=p.width,
    ),
)
