# Snakemake entry point: convert LiteMedSAM's image encoder for OpenVINO.
from samcrowd import masks, workflow

i, o = snakemake.input, snakemake.output
workflow.run(snakemake, lambda: masks.export_encoder(i.segmenter, o.xml, o.bin))
