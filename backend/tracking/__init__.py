"""GPS tracking: devices, shifts, pings (partitioned by day), live positions, proof of visit."""
