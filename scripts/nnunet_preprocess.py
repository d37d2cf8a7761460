# Snakemake entry point: plan and preprocess a dataset, write the fold split.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from samcrowd import nnunet, workflow

p = snakemake.params
workflow.run(
    snakemake,
    lambda: nnunet.preprocess(snakemake.input[0], p.paths, p.dataset_id, p.configuration, p.folds, p.seed,
                              snakemake.threads),  # writes snakemake.output[0], the dataset's splits_final.json
)
