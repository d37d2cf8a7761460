"""samcrowd: crowdsourced boxes + Segment Anything -> 3D CT labels, and what they are worth.

The library behind the Snakemake workflow. Modules are named for what they do:
io (files, atomically), geometry (voxel <-> PNG), phantom (synthetic abdomen),
export (slices for annotators), cases (case sheets), config (schema validation).
"""

__version__ = "0.1.0"
