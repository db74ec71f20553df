"""Debian's Chromium for the browser tests (console and card page), driven by Playwright.

Chromium is /usr/bin/chromium (`apt-get install chromium`, done by .ci/run when missing);
Playwright never downloads one. The flags keep it off this machine's closed network.
axe-core (npm, MPL-2.0, refreshed by gateway/console/refresh_vendor.sh) is injected to check
accessibility: no serious or critical violation is allowed on any page.
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import ViewportSize

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
BLOCKING_IMPACTS = frozenset({"serious", "critical"})
