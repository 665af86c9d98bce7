# lossatlas: `make reproduce` runs the default config end to end, `make test` runs the test suite,
# `make test-slurm` runs the smoke config on a real single-node Slurm it sets up (root),
# `make gallery` writes the README's figure thumbnails from the smoke config's figures.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
# The config `reproduce` runs and `clean` removes the results of (CONFIG=config/paper.yaml for
# another): every result of a config lies in results/NAME/, NAME its file name without .yaml
# (README, "Where outputs go").
CONFIG ?= config/config.yaml
NAME := $(basename $(notdir $(CONFIG)))
RESULTS := results/$(NAME)

.PHONY: reproduce test test-slurm venv clean gallery

venv: $(VENV)/.installed

$(VENV)/.installed: envs/requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r envs/requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

reproduce: venv
	$(BIN)/snakemake --cores $(CORES) --profile workflow/profiles/default --configfile $(CONFIG)
	$(BIN)/snakemake --cores $(CORES) --profile workflow/profiles/default --configfile $(CONFIG) \
		--report $(RESULTS)/report.html

# Two pytest workers (TEST_WORKERS=1 for one), each test file whole on one worker, the end-to-end
# files first (tests/conftest.py).
TEST_WORKERS ?= 2
test: venv
	$(BIN)/python -m pytest -ra -n $(TEST_WORKERS) --dist loadfile

# The README gallery: thumbnails of the smoke config's figures (results/smoke/figures/*.png, after
# `.venv/bin/snakemake --profile workflow/profiles/ci`) in docs/gallery/ (FIGURES=... to change).
FIGURES ?= results/smoke/figures
gallery: venv
	$(BIN)/python docs/make_gallery.py $(FIGURES) docs/gallery

test-slurm: venv
	bash tests/slurm/test_slurm.sh

# Removes every result of one config, results/NAME/ (default: results/config/, the default
# config's; `make clean CONFIG=config/paper.yaml` removes results/paper/). The other configs'
# folders, the dataset cache (resources/) and Snakemake's records (.snakemake/) stay.
clean:
	@test -n "$(NAME)" || { echo "make clean: CONFIG=$(CONFIG) names no config file" >&2; exit 1; }
	rm -rf $(RESULTS)
