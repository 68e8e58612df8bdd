"""mlwarden.update."""
