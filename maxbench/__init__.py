"""maxbench: benchmarks and reproductions of maximum-entropy RL as stable-baselines3 algorithms.

Importing the package is cheap (no torch); heavy modules are imported where they are used.
"""

__version__ = "0.1.0"
