# Snakemake entry point: fuse one case's annotators and complete the labels in 3D.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from samcrowd import fusion, quality, workflow
from samcrowd.masks import coverage_path


def main():
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    masks = {a: (v, coverage_path(v)) for a, v in zip(p.annotators, i.volumes)}
    if "quality" in i.keys():
        masks = {a: masks[a] for a in quality.kept_annotators(i.quality, p.annotators)}
    fusion.fuse_case(snakemake.wildcards.case, masks, i.manifest, i.image, p.organs, o.stacked, o.crowd, o.table,
                     p.method, p.absent, p.completion)


workflow.run(snakemake, main)
