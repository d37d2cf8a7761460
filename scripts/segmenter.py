# Snakemake entry point: check the checkpoint and record the segmenter.
from samcrowd import masks, workflow

workflow.run(snakemake, lambda: masks.write_segmenter_record(snakemake.params.settings, snakemake.output[0]))
