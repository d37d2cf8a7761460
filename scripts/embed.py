# Snakemake entry point: encode every exported slice of a case once.
from samcrowd import jobs, masks

i, o = snakemake.input, snakemake.output


def main():
    encoder_ir = (i.encoder_xml, i.encoder_bin) if "encoder_xml" in i.keys() else None
    segmenter = masks.segmenter_from_record(path=i.segmenter, encoder_ir=encoder_ir)
    masks.embed_case(
        segmenter=segmenter,
        manifest_path=i.manifest,
        slices_dir=i.slices,
        out_array=o.array,
        out_record=o.record,
        threads=snakemake.threads,
    )


jobs.run(snakemake, main)
