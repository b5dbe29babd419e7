"""The dashboard's files, served from this package, and the headers that confine them.

Only the files named here are served (no path from the request ever reaches the file
system). The Content-Security-Policy allows scripts, styles and requests from the API's
own origin only: no inline script or style, no other site, no framing.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
PAGE = "index.html"
JAVASCRIPT = "text/javascript; charset=utf-8"
# The page's own modules; dashboard.js is the one the page loads, it imports the others.
SCRIPTS = ("dashboard.js", "account.js", "admin.js", "api.js", "charts.js", "dom.js", "format.js")
ASSETS: dict[str, str] = {
    PAGE: "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    **{name: JAVASCRIPT for name in SCRIPTS},
    "chart.umd.js": JAVASCRIPT,
    "chart.js.LICENSE.md": "text/plain; charset=utf-8",
}

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        # The key form is handled by the script; were it ever submitted, nothing is sent.
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # Small files; a browser checks again each time, so a new version shows at once.
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=len(ASSETS))
def asset(name: str) -> bytes | None:
    """The file's bytes, or None for any name that is not one of ASSETS."""
    if name not in ASSETS:
        return None
    return (STATIC / name).read_bytes()
