# maxbench for reviewers: CPU only, a slim Python 3.11 base, the README's install, smoke run and report.
#   docker build -t maxbench .
#   docker run --rm -v "$PWD/results:/results" maxbench
# Its steps are the README's Quickstart (tests/test_docker.py checks that they stay identical).
FROM python:3.11-slim
# Optional: a CPU-only PyTorch package index (torch from PyPI on Linux carries CUDA libraries).
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} PYTHONUNBUFFERED=1
WORKDIR /maxbench
COPY . .
RUN python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e ".[dev]"
VOLUME ["/results"]
CMD ["sh", "-c", ".venv/bin/maxbench run suites/smoke.yaml --out /results && .venv/bin/maxbench report /results --rliable"]
