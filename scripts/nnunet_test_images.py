# Snakemake entry point: the test split's images for nnU-Net's predictor.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from samcrowd import nnunet, workflow

workflow.run(snakemake, lambda: nnunet.test_images(list(zip(snakemake.params.cases, snakemake.input.images)),
                                                   snakemake.output[0]))
