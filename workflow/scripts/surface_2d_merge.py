"""Merge the parts of a 2D surface (one run, one direction kind) into one HDF5 file with
tomgoldstein/loss-landscape names."""

import logging

from lossatlas import io
from lossatlas.landscape import load_surface_part, save_merged_surface

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True) as log:
    parts = [load_surface_part(path) for path in smk.input]
    skipped = save_merged_surface(smk.output[0], parts,
                                  {**smk.params.settings, "run": smk.wildcards.run,
                                   "direction_kind": smk.wildcards.kind})
    if skipped:
        logging.warning("%s", skipped)
    else:
        logging.info("merged %d parts into %s", len(parts), smk.output[0])
