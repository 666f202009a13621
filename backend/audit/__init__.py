"""Who changed what and when: an append-only log of changes to business records."""
