"""Persistence: crash-safe file operations, the on-disk model registry and its in-memory cache, and jobs."""
