# Snakemake entry point: check the checkpoint and record the segmenter.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from samcrowd import masks, workflow

workflow.run(snakemake, lambda: masks.write_segmenter_record(snakemake.params.settings, snakemake.output[0]))
