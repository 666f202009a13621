"""The numbers that judge a fix against a site, shared by check-ins, live status and hints."""

from __future__ import annotations

from typing import Final

SITE_RADIUS_M: Final = 150.0
"""A site's fence: within this distance of its point (plus the fix's accuracy) is on site."""

POOR_ACCURACY_M: Final = 100.0
"""A fix whose accuracy is worse than this cannot prove where the worker is."""

MAX_SPEED_MPS: Final = 70.0
"""About 250 km/h: a jump implying more than this between fixes is implausible."""
