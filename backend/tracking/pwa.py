"""The installable web client: ``/manifest.webmanifest`` and the service worker at ``/sw.js``
(served from the site's root so its scope is the whole site; the file is
``web/static/js/sw.js``). Both are public: the browser fetches them without a session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Response, get

SW_FILE = Path(__file__).resolve().parents[2] / "web" / "static" / "js" / "sw.js"

MANIFEST: dict[str, Any] = {
    "name": "fieldcrm",
    "short_name": "fieldcrm",
    "description": "Your day of visits: route, check-ins, photos and outcomes, also offline.",
    "start_url": "/today",
    "scope": "/",
    "display": "standalone",
    "orientation": "portrait",
    "background_color": "#f7f8fa",
    "theme_color": "#1f6feb",
    "icons": [
        {"src": "/static/icons/icon-192.png", "sizes": "192x192", "type": "image/png"},
        {"src": "/static/icons/icon-512.png", "sizes": "512x512", "type": "image/png"},
        {
            "src": "/static/icons/icon-512.png",
            "sizes": "512x512",
            "type": "image/png",
            "purpose": "maskable",
        },
    ],
}


@get("/manifest.webmanifest", opt={"public": True}, include_in_schema=False, sync_to_thread=False)
def manifest() -> Response[dict[str, Any]]:
    """The web app manifest (name, icons, start page)."""
    return Response(
        MANIFEST,
        media_type="application/manifest+json",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@get("/sw.js", opt={"public": True}, include_in_schema=False, sync_to_thread=False)
def service_worker() -> Response[bytes]:
    """The service worker; never cached by HTTP so a new version is picked up at once."""
    return Response(
        SW_FILE.read_bytes(),
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"},
    )


ROUTES = [manifest, service_worker]
