"""The PostgreSQL backend: one database shared by any number of server instances (SPEC §9).

The ``events`` table is the truth; a per-session row lock on ``sessions.head`` keeps seq
gap-free; NOTIFY after commit is only a wake-up for other instances' subscribers.
"""
