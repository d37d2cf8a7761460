# Snakemake entry point: check the checkpoint and record the segmenter.
from samcrowd import jobs, masks

jobs.run(snakemake, lambda: masks.write_segmenter_record(snakemake.params.settings, snakemake.output[0]))
