"""Geography for field work: distances, tracks, geofences (pure, no database)."""
