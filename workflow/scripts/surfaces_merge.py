"""Merge the parts of one solution's surfaces (``surfaces.py``): each direction kind's 2D surface
into one HDF5 file with tomgoldstein/loss-landscape names, and the roughness profiles into one
table in direction order."""

import logging

import pandas as pd

from lossatlas import io
from lossatlas.landscape import load_surface_part, save_merged_surface

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True) as log:
    for kind in ("random", "hessian"):
        parts = [load_surface_part(path) for path in smk.input[kind]]
        skipped = save_merged_surface(smk.output[kind], parts,
                                      {**smk.params.surface_attrs, "run": smk.wildcards.run,
                                       "direction_kind": kind})
        if skipped:
            logging.warning("%s surface: %s", kind, skipped)
        else:
            logging.info("merged %d parts into %s", len(parts), smk.output[kind])
    tables = [io.read_csv(path) for path in smk.input.roughness]
    skipped = [table for table in tables if (table["status"] != "ok").any()]
    measured = [table for table in tables if len(table)] or tables[:1]   # a part may have none
    roughness = skipped[0].head(1) if skipped else pd.concat(measured, ignore_index=True)
    io.write_csv(roughness, smk.output.roughness)
    logging.info("merged %d roughness parts: %d directions", len(tables), len(roughness))
