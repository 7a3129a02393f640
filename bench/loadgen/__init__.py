"""The load generator: processes holding thousands of clients, started by bench/procs.py."""
