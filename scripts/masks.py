# Snakemake entry point: one annotator's boxes on a batch's cases -> box tables and label volumes.
from samcrowd import jobs, masks

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: masks.mask_batch(
        segmenter=masks.segmenter_from_record(
            path=i.segmenter, any_device=False, decoder_ir=tuple(i.decoder_ir) if "decoder_ir" in i.keys() else None
        ),
        annotator=snakemake.wildcards.annotator,
        folder=i.folder,
        cases=p.cases,
        manifests=list(i.manifests),
        slices=list(i.slices),
        images=list(i.images),
        embeddings=i.embeddings if "embeddings" in i.keys() else None,
        out_folder=o[0],
        organs=p.organs,
        naming=p.naming,
        class_overrides=p.classes,
        known_cases=set(p.known_cases),
        assignment=i.assignment if "assignment" in i.keys() else None,
        unassigned=p.unassigned,
        threads=snakemake.threads,
    ),
)
