"""The workloads: W1-W5 (broadcast), the burst, R1-R2 (rooms), S1 (storm), C1-C3 (cluster),
the wire formats, the metrics overhead and the paired rounds; see docs/benchmarks.md."""
