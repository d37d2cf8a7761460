# Snakemake entry point: convert LiteMedSAM's image encoder for OpenVINO.
from samcrowd import jobs, masks

i, o = snakemake.input, snakemake.output
jobs.run(snakemake, lambda: masks.export_encoder(i.segmenter, o.xml, o.bin))
