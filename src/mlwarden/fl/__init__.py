"""mlwarden.fl."""
