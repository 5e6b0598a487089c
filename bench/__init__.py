"""Speed benchmark of the pipeline: `python -m bench.run [--smoke]` (see bench/README.md)."""
