# lossatlas: `make reproduce` runs the default config end to end, `make test` runs the test suite,
# `make test-slurm` runs the smoke config on a real single-node Slurm it sets up (root),
# `make gallery` writes the README's figure thumbnails from results/figures.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: reproduce test test-slurm venv clean gallery

venv: $(VENV)/.installed

$(VENV)/.installed: envs/requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r envs/requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

reproduce: venv
	$(BIN)/snakemake --cores $(CORES) --profile workflow/profiles/default
	$(BIN)/snakemake --cores $(CORES) --profile workflow/profiles/default --report results/report.html

test: venv
	$(BIN)/python -m pytest -ra

# The README gallery: thumbnails of results/figures/*.png in docs/gallery/ (FIGURES=... to change).
FIGURES ?= results/figures
gallery: venv
	$(BIN)/python docs/make_gallery.py $(FIGURES) docs/gallery

test-slurm: venv
	bash tests/slurm/test_slurm.sh

clean:
	rm -rf results/runs results/batches results/structures results/figures results/measurements \
		results/benchmarks results/logs results/report.html results/claims.csv results/claims.md \
		results/claims.html results/claims_table.html .snakemake
