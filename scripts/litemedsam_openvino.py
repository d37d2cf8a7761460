# Snakemake entry point: convert LiteMedSAM's image encoder and box decoder for OpenVINO.
from samcrowd import jobs, masks

i, o = snakemake.input, snakemake.output
jobs.run(
    snakemake,
    lambda: masks.export_openvino(segmenter_json=i.segmenter, encoder=tuple(o.encoder), decoder=tuple(o.decoder)),
)
