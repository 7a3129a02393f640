"""A local cluster on loopback: nodes on Redis and PostgreSQL behind nginx (`make cluster`)."""
