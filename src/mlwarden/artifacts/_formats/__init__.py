"""Format readers, one module per family; see mlwarden.artifacts._dispatch."""
