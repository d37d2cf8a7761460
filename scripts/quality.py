# Snakemake entry point: annotator reliability without an expert.
from samcrowd import jobs, quality
from samcrowd.masks import mask_files

i, p = snakemake.input, snakemake.params
files = [mask_files(folder, case) for (case, _), folder in zip(p.pairs, p.folders, strict=True)]
jobs.run(
    snakemake,
    lambda: quality.write_quality(
        pairs=p.pairs,
        tables=[f["boxes"] for f in files],
        volumes=[f["volume"] for f in files],
        coverage=[f["coverage"] for f in files],
        manifests=dict(zip(p.cases, i.manifests)),
        organs=p.organs,
        out=snakemake.output[0],
        method=p.method,
        absent=p.absent,
        threshold=p.threshold,
        assignment=i.assignment if "assignment" in i.keys() else None,
        labels=dict(zip(p.gold_cases, i.gold_labels)) if "gold_labels" in i.keys() else None,
        organ_values=p.organ_values,
    ),
)
