"""``python -m maxbench``: the same as the ``maxbench`` command."""

from maxbench.cli import app

app(prog_name="maxbench")
