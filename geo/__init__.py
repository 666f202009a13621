"""Geography for field work: distances, travel-time matrices, tracks, geofences and route
optimisation (pure, no database)."""
