"""The workloads, one module each; docs/benchmarks.md describes them."""
