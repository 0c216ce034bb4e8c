"""How fast the app's pages paint, cold (first visit after start) and warm (cached store and images).

Starts `xvision ui` on a store on a free loopback port and drives it with Playwright + chromium
(/usr/bin/chromium). A page has painted when Streamlit has finished the script run (its status
widget is gone) and the page's own content is drawn (the map's parcels inside the component
iframe, the parcel's chart, the form). Prints one line per page: cold and the median of warm loads.

    .venv/bin/python benchmarks/ui_paint.py --store demo-store [--parcel Flanders31UES-001] [--repeat 5]
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settled(page) -> None:
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--parcel", default="Flanders31UES-001")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "xvision.cli", "ui", "--store", str(args.store),
                               "--port", str(port)], stdout=subprocess.PIPE, text=True)
    for line in server.stdout:
        if "serving at" in line:
            break
    url = f"http://127.0.0.1:{port}"
    pages = {
        "map": ("/", lambda p: p.frame_locator('iframe[title="streamlit_folium.st_folium"]')
                .locator("path.leaflet-interactive").first.wait_for()),
        "parcel": ("/parcel", lambda p: p.locator('[data-testid="stVegaLiteChart"]').first.wait_for()),
        "add-data": ("/add-data", lambda p: p.locator('[data-testid="stForm"]').first.wait_for()),
    }
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            # Select a parcel once (a click on the Parcel page's select box), so its pages have content.
            page.goto(url + "/parcel")
            _settled(page)
            page.locator('[data-testid="stSelectbox"]').first.click()
            page.get_by_role("option", name=re.compile(re.escape(args.parcel))).click()
            _settled(page)
            for name, (path, drawn) in pages.items():
                times = []
                for _ in range(args.repeat + 1):
                    start = time.perf_counter()
                    page.get_by_role("link", name={"map": "Map", "parcel": "Parcel", "add-data": "Add data"}[name]).first.click()
                    drawn(page)  # content only this page has (the previous page was Ask)
                    _settled(page)
                    times.append(time.perf_counter() - start)
                    page.get_by_role("link", name="Ask").first.click()  # leave, so the next click loads the page again
                    _settled(page)
                print(f"{name:9s} first {times[0]:.2f} s   warm median {statistics.median(times[1:]):.2f} s "
                      f"(n={args.repeat}, min {min(times[1:]):.2f}, max {max(times[1:]):.2f})")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
