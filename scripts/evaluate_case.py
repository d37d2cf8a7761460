# Snakemake entry point: Dice of one case's crowd labels against its expert label.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from samcrowd import evaluation, workflow
from samcrowd.masks import coverage_path

i, o, p = snakemake.input, snakemake.output, snakemake.params
workflow.run(
    snakemake,
    lambda: evaluation.evaluate_case_files(
        snakemake.wildcards.case, i.label, p.organs, i.manifest,
        {a: (v, coverage_path(v)) for a, v in zip(p.annotators, i.volumes)},
        i.stacked, i.crowd if p.completion else None, i.fusion, o.slices, o.volumes, o.exclusions, p.other_labels),
)
