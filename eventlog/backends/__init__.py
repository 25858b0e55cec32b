"""One package per storage backend; what they share lives in ``eventlog`` itself."""
