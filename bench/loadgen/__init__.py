"""The load generator: processes holding thousands of WebSocket clients (`python -m
bench.loadgen`, started by bench/procs.py), their clients, room clients and storm clients."""
