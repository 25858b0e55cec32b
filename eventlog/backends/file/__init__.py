"""The file backend: a data directory of per-session journals (SPEC §2-3)."""
