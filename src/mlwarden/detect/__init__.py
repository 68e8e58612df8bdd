"""mlwarden.detect."""
