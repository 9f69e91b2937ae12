# make demo | make test | make test-fast | make bench
# Everything runs in .venv/ in the repo root, created and filled on first use.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast browser bench bench-dip bench-dhd bench-ben2 bench-serve install clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# The demo trains tiny BEN on the built-in synthetic DIS5K (~4 CPU minutes), tests it (metric table, picture
# grids in $(DEMO)/ben/pictures/), then cuts objects out of the test images into $(DEMO)/ben/cutouts/; then it
# denoises two scikit-image images at sigma 25 with DIP (estimated architecture) next to BM3D ($(DEMO)/dip/);
# last it trains tiny DHD on the synthetic street worlds (~6 CPU minutes), evaluates it (per-class IoU, BEV and
# voxel pictures) and predicts occupancy for the held-out scenes ($(DEMO)/dhd/).
DEMO := demo_outputs

demo: $(STAMP)
	$(PY) -c "import visionzoo; print('visionzoo models:', ', '.join(visionzoo.list_models()))"
	rm -rf $(DEMO)/ben
	$(PY) train.py experiment=ben_synthetic test=true paths.cache_dir=$(DEMO)/cache hydra.run.dir=$(DEMO)/ben
	$(PY) predict.py experiment=ben_cutout model=ben_tiny ckpt_path=$(DEMO)/ben/checkpoints/last.ckpt \
		"input='$(DEMO)/cache/datasets/synthetic_dis_*/DIS5K/DIS-TE1/im/*.jpg'" output=$(DEMO)/ben/cutouts \
		predictor.input_size=256 overwrite=true
	rm -rf $(DEMO)/dip
	$(PY) eval.py experiment=dip_denoise "data.images=[camera,astronaut]" data.sigma=25 hydra.run.dir=$(DEMO)/dip
	rm -rf $(DEMO)/dhd
	$(PY) train.py experiment=dhd_synthetic test=true paths.cache_dir=$(DEMO)/cache hydra.run.dir=$(DEMO)/dhd
	$(PY) predict.py experiment=dhd_occ3d model=dhd_tiny data=occ3d_synthetic \
		ckpt_path=$(DEMO)/dhd/checkpoints/last.ckpt input=$$(echo $(DEMO)/cache/datasets/synthetic_occ3d_*) \
		output=$(DEMO)/dhd/predictions overwrite=true
	@echo "demo outputs: $(DEMO)/ben (metrics.csv, pictures/, cutouts/), $(DEMO)/dip (metrics.csv, pictures/)," \
		"$(DEMO)/dhd (metrics.csv, pictures/, predictions/)"

# Two pytest-xdist workers of one OpenMP thread each: most tests are short and single-threaded (start-up, image
# decoding, ray casting), so two at once keep both cores busy; tests sharing a costly fixture share a worker
# (xdist_group) and the slow ones start first (tests/conftest.py). Plain `pytest` runs them one by one.
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadgroup

test: $(STAMP) browser
	$(PYTEST) --durations=15

test-fast: $(STAMP)
	$(PYTEST) -m "not slow and not integration"

# The web page's test drives Debian's chromium (never a downloaded browser); installed here when missing (root).
browser:
	@test -x /usr/bin/chromium || { test "$$(id -u)" = 0 && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		{ echo "install Debian's chromium (apt-get install chromium) for the page test"; exit 2; }

bench: $(STAMP)
	$(PY) benchmarks/run.py --dtypes fp32 bf16 --out benchmarks/RESULTS.md

# DIP time-to-PSNR: original dip_skip vs the estimated architecture vs BM3D (about 8 CPU minutes per image).
bench-dip: $(STAMP)
	$(PY) research/dip/dip_time_to_psnr.py --images camera astronaut

# BEN2 Base: the published code and ben2_base (and ben_dla34) timed in one run (about 30 CPU minutes). Needs a
# checkout of github.com/PramaLLC/BEN2: make bench-ben2 BEN2=/path/to/BEN2 (its BEN2.py also imports einops).
bench-ben2: $(STAMP)
	@test -f "$(BEN2)/BEN2.py" || { echo "set BEN2=path/to/a/checkout/of/PramaLLC/BEN2"; exit 2; }
	$(PY) -m pip install --quiet einops
	$(PY) benchmarks/run.py --external published_ben2=$(BEN2)/BEN2.py:BEN_Base --models published_ben2 ben2_base \
		ben_dla34 --dtypes fp32 bf16 --warmup 1 --repeats 3 --out benchmarks/BEN2_BENCH.md

# DHD forward latency, peak memory, FLOPs and each part's share on six cameras at each model's input size, and
# onnxruntime beside PyTorch for dhd_s and dhd_m (about 20 CPU minutes).
bench-dhd: $(STAMP)
	$(PY) benchmarks/dhd_bench.py --models dhd_s dhd_m dhd_l dhd_dla34 dhd_r50 --onnx dhd_s dhd_m --out benchmarks/DHD_BENCH.md

# The HTTP service against predict.py one by one at concurrency 1, 8, 32 (about 5 CPU minutes for ben_dla34).
bench-serve: $(STAMP)
	$(PY) benchmarks/serve_bench.py --models ben_dla34 --size 1024 --concurrency 1 8 32

clean:
	rm -rf $(VENV) logs outputs $(DEMO) .pytest_cache test-artifacts serve_jobs
