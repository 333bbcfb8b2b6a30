"""Regression-wide settings.

Verilator builds in the regression compile their C++ at -O0 (sim/tools/harness.py ``CXX_OPTS``): the
tests simulate for seconds, and g++ -Os on the larger designs takes minutes (the 4 x 4 mesh about
10 minutes against 83 s). Benchmarks and ``make sim`` keep -Os. ``TESSERA_CXX_OPT=-Os make test``
builds the regression optimised instead.

Seeds: every randomized test is marked ``@pytest.mark.randomized`` and ``make soak`` runs them over
many seeds (the plugin ``tb/soak.py``).
"""

import os

os.environ.setdefault("TESSERA_CXX_OPT", "-O0")

pytest_plugins = ["tessera.tb.soak"]
