# Snakemake entry point: convert LiteMedSAM's image encoder for OpenVINO.
from samcrowd import jobs, masks

i, o = snakemake.input, snakemake.output
jobs.run(snakemake, lambda: masks.export_encoder(segmenter_json=i.segmenter, out_xml=o.xml, out_bin=o.bin))
