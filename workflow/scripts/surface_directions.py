"""Gaussian directions shared by every surface and roughness profile of the config.

Rows 0 and 1 are the surface directions δ, η; the rest are the roughness directions. They are stored
raw and filter-normalized to each solution's θ where they are used (Li et al. 2018).
"""

import logging

from lossatlas import io
from lossatlas.data import load_dataset
from lossatlas.landscape import random_directions, save_directions
from lossatlas.params import get_flat_params, param_layout
from lossatlas.runs import build_run_model

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True) as log:
    data = load_dataset(smk.input.data)
    model = build_run_model(smk.params.model, smk.params.model_knobs, data)
    layout = param_layout(model)
    count = 2 + smk.params.roughness_directions
    directions = random_directions(get_flat_params(model), layout, count, smk.params.seed,
                                   method="none", ignore_biasbn=False)
    save_directions(smk.output[0], directions, layout,
                    {"seed": smk.params.seed, "distribution": "standard normal, unnormalized",
                     "rows": "0, 1: surface directions; 2...: roughness directions"})
    logging.info("wrote %d directions of dimension %d", count, layout.dim)
