# lossatlas: dataset -> training sweep -> measurements -> figures.
# `snakemake --cores all` builds every figure; `snakemake --cores all <figure>` builds one.


# The default config applies only when none is given: a --configfile replaces it instead of being
# merged into it key by key (which would mix the default runs into another config's sweep).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/lb_sb.smk"
include: "workflow/rules/landscape.smk"
include: "workflow/rules/curvature.smk"
include: "workflow/rules/subspace.smk"
include: "workflow/rules/goldilocks.smk"
include: "workflow/rules/wedge.smk"
include: "workflow/rules/structures.smk"


FIGURES = [
    "lb_sb_interpolation",
    "surface_2d",
    "trajectory_pca",
    "mli",
    "sgd_walk",
    "hessian_spectrum",
    "curvature_along_training",
    "subspace_training",
    "goldilocks",
    "long_short_directions",
    "wedge_cuts",
    "mode_connectivity",
    "low_loss_subspace",
    "ensembles",
]


wildcard_constraints:
    run=r"[A-Za-z0-9_.]+-s\d+",
    structure=r"[A-Za-z0-9_.-]+",


rule all:
    default_target: True
    input:
        expand("results/figures/{figure}.{ext}", figure=FIGURES, ext=["pdf", "png"]),
