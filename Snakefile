# lossatlas: dataset -> training sweep -> measurements -> figures.
# `snakemake --cores all` builds every figure; `snakemake --cores all <figure>` builds one.


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/figures.smk"


FIGURES = ["lb_sb_interpolation"]


wildcard_constraints:
    run=r"[A-Za-z0-9_]+-s\d+",


rule all:
    default_target: True
    input:
        expand("results/figures/{figure}.{ext}", figure=FIGURES, ext=["pdf", "png"]),
