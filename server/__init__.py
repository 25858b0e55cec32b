"""sessionlog's aiohttp server: a thin adapter over ``eventlog``."""
