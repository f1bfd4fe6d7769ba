"""The papers' reproductions: S2AC's entropy check and its multi-goal test episodes and figures.

A layer beside :mod:`maxbench.report` (DESIGN.md: cli -> {suite, report, repro} -> {results,
registry} -> algos): it reads results folders and loads trained agents through the registry, so
it lives above :mod:`maxbench.algos`, which imports nothing of it.

- :mod:`maxbench.repro.entropy_report`: the closed-form SVGD entropy against the truth (Fig. 4).
- :mod:`maxbench.repro.multigoal`: test episodes of trained multi-goal agents (Fig. 7, 12, 16).
- :mod:`maxbench.repro.multigoal_plots`: their trajectory grids and goal histograms.
- :mod:`maxbench.repro.commands`: ``maxbench entropy`` and ``maxbench multigoal``.

Submodules are imported on demand (torch and matplotlib are heavy), so importing the package is
cheap.
"""
