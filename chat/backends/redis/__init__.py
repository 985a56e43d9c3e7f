"""History, fan-out and presence on Redis, shared by many processes on many machines."""
