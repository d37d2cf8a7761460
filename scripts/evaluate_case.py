# Snakemake entry point: Dice of one case's crowd labels against its expert label.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from samcrowd import evaluation, workflow

i, o, p = snakemake.input, snakemake.output, snakemake.params
workflow.run(
    snakemake,
    lambda: evaluation.evaluate_case_files(
        snakemake.wildcards.case, i.label, p.organs, i.manifest, dict(zip(p.annotators, zip(i.volumes, i.coverage))),
        i.stacked, i.crowd if p.completion else None, i.fusion, o.slices, o.volumes, o.exclusions, p.other_labels),
)
