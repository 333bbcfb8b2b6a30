"""tessera.cli: the ``tessera`` command line (:mod:`.main`); one module per command.

``cmd_*.py`` are top-level commands, ``bench_*.py`` the ``tessera bench`` benchmarks.
"""
