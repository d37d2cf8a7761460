# Snakemake entry point: check the checkpoint and record the segmenter.
from samcrowd import jobs, masks

jobs.run(snakemake, lambda: masks.write_segmenter_record(settings=snakemake.params.settings, out=snakemake.output[0]))
