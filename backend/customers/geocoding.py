"""The pluggable geocoder: turns an address into a point when the client sent no coordinates.

None is required: without one, sites need ``lat`` and ``lon``. A real deployment can set
``app.state.geocoder`` to anything that implements ``Geocoder`` (Nominatim, a commercial API...).
"""

from __future__ import annotations

from typing import Protocol


class Geocoder(Protocol):
    """Resolve an address to (latitude, longitude), or None when it cannot be found."""

    async def geocode(self, address: str) -> tuple[float, float] | None: ...
