"""mlwarden.assess."""
