# Snakemake entry point: fuse one case's annotators and complete the labels in 3D.
from samcrowd import fusion, jobs, quality


def main():
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    masks = {a: (v, c) for a, v, c in zip(p.annotators, i.volumes, i.coverage)}
    if "quality" in i.keys():
        masks = {a: masks[a] for a in quality.kept_annotators(i.quality, p.annotators)}
    fusion.fuse_case(
        snakemake.wildcards.case,
        masks,
        i.manifest,
        i.image,
        p.organs,
        o.stacked,
        o.crowd,
        o.table,
        p.method,
        p.absent,
        p.completion,
    )


jobs.run(snakemake, main)
