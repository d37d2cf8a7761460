# Snakemake entry point: convert LiteMedSAM's image encoder for OpenVINO.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from samcrowd import masks, workflow

i, o = snakemake.input, snakemake.output
workflow.run(snakemake, lambda: masks.export_encoder(i.segmenter, o.xml, o.bin))
