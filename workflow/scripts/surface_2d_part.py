"""One part of a filter-normalized 2D loss surface around a solution (Li et al. 2018)."""

import logging

import numpy as np
import torch

from lossatlas import io
from lossatlas.data import load_dataset
from lossatlas.evaluate import precision_for
from lossatlas.landscape import (
    SurfacePart,
    load_directions,
    save_surface_part,
    surface_2d_part,
)
from lossatlas.params import get_flat_params, normalize_direction, param_layout
from lossatlas.runs import load_run_model, skip_reason
from lossatlas.train import resolve_device

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
settings = smk.params.settings
part, parts = int(smk.wildcards.part), settings["parts"]
xs = np.linspace(settings["xmin"], settings["xmax"], settings["xnum"])
ys = np.linspace(settings["ymin"], settings["ymax"], settings["ynum"])
with io.job_log(smk.log[0]) as log:
    skipped = skip_reason(smk.input.status, smk.wildcards.run)
    if skipped:
        logging.warning("%s", skipped)
        save_surface_part(smk.output[0], SurfacePart(0, 0, xs, ys, {}, {"status": skipped}))
    else:
        device = resolve_device(smk.params.device)
        precision = precision_for(smk.params.precision, device)
        data = load_dataset(smk.input.data).to(device)
        model = load_run_model(smk.params.model, smk.params.model_knobs, data, smk.input.final)
        layout = param_layout(model)
        theta = get_flat_params(model)
        raw, _ = load_directions(smk.input.directions, layout)
        d1, d2 = (normalize_direction(raw[i], theta, layout, settings["normalization"],
                                      settings["ignore_biasbn"]).to(device) for i in (0, 1))
        logging.info("part %d of %d of a %d x %d grid", part, parts, len(xs), len(ys))
        result = surface_2d_part(model, theta.to(device), d1, d2, xs, ys,
                                 (data.x_train, data.y_train, data.x_test, data.y_test),
                                 part=part, n_parts=parts, bn_policy=settings["bn_policy"],
                                 precision=precision, progress_file=log)
        result.attrs["status"] = "ok"
        save_surface_part(smk.output[0], result)
