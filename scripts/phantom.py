# Snakemake entry point: generate the synthetic abdomen study.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from samcrowd import phantom, workflow

settings = phantom.PhantomSettings.from_config(snakemake.params.settings)
workflow.run(snakemake, lambda: phantom.write_study(settings, snakemake.output.sheet))
