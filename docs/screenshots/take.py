"""Screenshots of the web app's pages for README, from a running app (``make demo`` serves one).

python docs/screenshots/take.py http://127.0.0.1:8080
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).parent
SEGMENT = (  # ordered in the last year, at least two orders, or a PENDING one
    "list=1&match=any&kind0=ordered&when0=last&days0=365&kind1=order_count&op1=%3E%3D&number1=2&when1=ever"
    "&kind2=has_status&status2=PENDING"
)


def main() -> None:
    base = sys.argv[1].rstrip("/")
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Chromium (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 820}, locale="en-GB", timezone_id="Europe/Lisbon")
        page.goto(f"{base}/contacts?q=c")
        page.screenshot(path=str(HERE / "contacts.png"))
        page.locator("table.contacts tbody tr a").first.click()
        page.screenshot(path=str(HERE / "contact-orders.png"))
        page.locator("table.orders tbody tr td:nth-child(3) a").first.click()
        page.screenshot(path=str(HERE / "order.png"))
        page.go_back()
        page.get_by_role("link", name="Activity").click()
        page.screenshot(path=str(HERE / "contact-activity.png"))
        page.goto(f"{base}/segments/new?{SEGMENT}")
        page.screenshot(path=str(HERE / "segment.png"), full_page=True)
        page.goto(f"{base}/insights?by=week")
        page.screenshot(path=str(HERE / "insights.png"), full_page=True)
        page.goto(f"{base}/stores")
        page.screenshot(path=str(HERE / "stores.png"))
        browser.close()


if __name__ == "__main__":
    main()
