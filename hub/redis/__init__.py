"""The cluster: the Redis broker, its recovery log, presence, node stats and their Lua steps.

Each module is the Redis twin of an in-memory one in hub/: broker.py of hub/broker.py's
MemoryBroker, log.py of hub/history.py's MemoryLog, presence.py of hub/presence.py's
MemoryPresence, stats.py of hub/nodestats.py's LocalStats; scripts.py names every key and
holds every Lua step. With the memory broker none of this is imported.
"""
