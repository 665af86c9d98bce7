"""Render the trajectory on its PCA plane over the loss contours, with the explained-variance claim
row."""

import json
import logging

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.figure_claims import trajectory_pca_claim
from lossatlas.plots import save_figure
from lossatlas.plots.landscape import plot_trajectory_pca

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True) as log:
    arrays, attrs = io.read_h5(smk.input.measurement)
    write_claims(pd.DataFrame([trajectory_pca_claim(attrs, smk.params.min_explained_variance)]),
                 smk.output.claims,
                 regime=read_regime(smk.input.regime_solutions, smk.params.regime))
    if attrs["status"] != "ok":
        logging.warning("%s", attrs["status"])
        figure = plt.figure(figsize=(5, 4))
        figure.text(0.5, 0.5, f"trajectory PCA of {attrs['run']}: {attrs['status']}", ha="center")
    else:
        path = np.stack([arrays["proj_xcoord"], arrays["proj_ycoord"]], axis=1)
        figure = plot_trajectory_pca(arrays, path, json.loads(attrs["path_labels"]),
                                     tuple(arrays["explained_variance_ratio_"]))
    save_figure(figure, smk.output.pdf, smk.output.png)
