"""Pattern-based, idempotent patches for darknet sources (both forks) and its cached build."""
