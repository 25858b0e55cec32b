"""sessionlog's engine: crash-safe per-session journals, folding, compaction, index."""
