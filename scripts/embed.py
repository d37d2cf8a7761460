# Snakemake entry point: encode every exported slice of a batch's cases, loading the model once.
from samcrowd import jobs, masks

i, o, p = snakemake.input, snakemake.output, snakemake.params


def main():
    masks.embed_batch(
        segmenter=masks.segmenter_from_record(
            path=i.segmenter, any_device=False, encoder_ir=tuple(i.encoder_ir) if "encoder_ir" in i.keys() else None
        ),
        cases=p.cases,
        manifests=list(i.manifests),
        slices=list(i.slices),
        out_folder=o[0],
        threads=snakemake.threads,
    )


jobs.run(snakemake, main)
