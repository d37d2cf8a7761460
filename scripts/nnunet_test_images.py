# Snakemake entry point: the test split's images for nnU-Net's predictor.
from samcrowd import jobs, nnunet

jobs.run(
    snakemake,
    lambda: nnunet.test_images(
        cases=list(zip(snakemake.params.cases, snakemake.input.images)), out_dir=snakemake.output[0]
    ),
)
