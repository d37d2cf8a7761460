# Snakemake entry point: annotator reliability without an expert.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from samcrowd import quality, workflow
from samcrowd.masks import coverage_path

i, p = snakemake.input, snakemake.params
# inputs were expanded case-major: for each case, every annotator
pairs = [(Path(v).parent.name, Path(v).name.removesuffix(".nii.gz")) for v in i.volumes]
manifests = {Path(m).name.removesuffix(".manifest.json"): m for m in i.manifests}
workflow.run(
    snakemake,
    lambda: quality.write_quality(pairs, list(i.tables), list(i.volumes), [coverage_path(v) for v in i.volumes], manifests, p.organs,
                                  snakemake.output[0], p.method, p.absent, p.threshold),
)
