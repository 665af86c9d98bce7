"""Merge the parts of a 2D surface (one run, one direction kind) into one HDF5 file with
tomgoldstein/loss-landscape names."""

import logging

from lossatlas import io
from lossatlas.landscape import load_surface_part, merge_surface_parts

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True) as log:
    parts = [load_surface_part(path) for path in smk.input]
    statuses = {part.attrs["status"] for part in parts}
    if statuses != {"ok"}:
        skipped = sorted(statuses - {"ok"})[0]
        logging.warning("%s", skipped)
        io.write_h5(smk.output[0], {}, {"status": skipped, "run": smk.wildcards.run,
                                        "direction_kind": smk.wildcards.kind})
    else:
        surface = merge_surface_parts(parts)
        attrs = {**smk.config["figures"]["surface_2d"], **surface.attrs, "run": smk.wildcards.run}
        io.write_h5(smk.output[0], surface.arrays, attrs)
        logging.info("merged %d parts into %s", len(parts), smk.output[0])
