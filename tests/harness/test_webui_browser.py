"""The web UI end to end in a real headless Chromium (Debian's, driven by Playwright; nothing downloaded):
the start form speaks arrival rates (chatload's fields first, Locust's users, ramp-up and host hidden,
no "no host attribute" hint), a run started from the form draws the Throttling tab's live charts (points
that grow and match /chatload/live) and moves its numbers, a screenshot of the tab lands in the test's
folder, and stopping the run from the UI leaves a run folder with meta.json and attempts."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from support import running_locust

from chatload.emulator_control import running_emulator
from chatload.processes import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OFFERED = "Offered arrivals (StartChatContact)"
ACCEPTED = "Accepted (ok)"
FIRST_FIELDS = ["scenario", "rateMultiplier", "arrivals", "target"]  # webui.FORM_FIRST, as the form names them
CHART_KEYS = ["offered", "accepted", "throttled_tps", "throttled_concurrency", "dropped", "other", "active_chats"]

# The form's named inputs that a person sees, top to bottom.
VISIBLE_FIELDS = """() => [...document.querySelectorAll("form input[name]")]
    .filter((e) => e.getClientRects().length && getComputedStyle(e).visibility !== "hidden")
    .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)
    .map((e) => e.name)"""

SCENARIO = """\
# Browser test: a short steady run well under the emulator's StartChatContact quota.
[[stages]]
name = "browser"
duration = "40s"
target_rate = 3

[chat]
connect = false

[target]
kind = "emulator"
"""

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian's chromium is not installed at {CHROMIUM}"),
]


def wait_for_http(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"locust exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"locust's web UI did not answer at {url}:\n{log.read_text()[-3000:]}")


def cell(page, figure: str, column: int) -> str:
    """Text of one cell of the Throttling table (columns: figure, now, total, share, note)."""
    return page.locator("tr", has_text=figure).first.locator("td").nth(column).inner_text()


def total(page, figure: str) -> int:
    return int(cell(page, figure, 2))


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


def run_folders(reports: Path) -> list[Path]:
    return sorted(p for p in reports.glob("*") if (p / "meta.json").exists()) if reports.exists() else []


def chart_now(page) -> dict:
    """What the charts show (window.chatloadChart) and how many points the drawn charts have."""
    return page.evaluate(
        """() => ({chart: window.chatloadChart || null,
                  drawn: Number(document.querySelector('[data-chatload="charts"]')?.dataset.points || 0),
                  canvases: document.querySelectorAll('[data-chatload="charts"] canvas').length})"""
    )


def state_of(base: str) -> str:
    """The runner's state as Locust's server says it (not its page)."""
    import urllib.request

    with urllib.request.urlopen(base + "stats/requests", timeout=10) as answer:
        return json.loads(answer.read())["state"]


def check_the_form(page, scenario: Path, emu_url: str) -> None:
    page.locator('[data-chatload="note"]').wait_for(timeout=15_000)
    assert "arrival rate" in page.locator('[data-chatload="note"]').inner_text()
    assert page.locator("input[name=scenario]").input_value() == str(scenario)
    # chatload's fields first, as plain fields; Locust's users, ramp-up and host out of sight
    visible = page.evaluate(VISIBLE_FIELDS)
    assert visible[:4] == FIRST_FIELDS, visible
    for name in ("userCount", "spawnRate", "host"):
        assert name not in visible and not page.locator(f"input[name={name}]").is_visible(), name
    assert page.get_by_text("no host attribute").count() == 0
    # set on the command line only
    for name in ("out", "runId", "confirmRealInstance"):
        assert page.locator(f"[name={name}]").count() == 0, name
    # the other options behind the "Custom parameters" toggle
    assert not page.locator("input[name=endpointUrl]").is_visible()
    page.get_by_role("button", name="Custom parameters").click()
    assert page.locator("input[name=endpointUrl]").is_visible()
    assert page.locator("input[name=endpointUrl]").input_value() == emu_url
    for name in ("rate", "duration", "maxChats", "maxRate", "retryMode", "seed"):
        assert page.locator(f"input[name={name}]").is_visible(), name
    assert page.evaluate(VISIBLE_FIELDS)[:4] == FIRST_FIELDS


def check_the_charts(page) -> None:
    charts = page.locator('[data-chatload="charts"]')
    charts.wait_for(timeout=15_000)
    wait_until(lambda: chart_now(page)["drawn"] >= 3, 25, "three seconds on the charts")
    first = chart_now(page)
    assert first["canvases"] == 3
    wait_until(lambda: chart_now(page)["drawn"] >= first["drawn"] + 2, 10, "the charts to grow")
    now = chart_now(page)
    chart = now["chart"]
    assert now["drawn"] == len(chart["t"]) > len(first["chart"]["t"])
    assert sum(chart["offered"]) > 0 and sum(chart["accepted"]) > 0
    assert "browser" in chart["stage"]
    # the same figures as /chatload/live for every second both have (complete seconds do not change)
    live = page.evaluate("() => fetch('./chatload/live').then((r) => r.json())")
    served = {t: i for i, t in enumerate(live["chart"]["t"])}
    common = [(i, served[t]) for i, t in enumerate(chart["t"]) if t in served]
    assert len(common) >= 3
    for key in CHART_KEYS:
        assert [chart[key][i] for i, _ in common] == [live["chart"][key][j] for _, j in common], key
    assert chart["quota_concurrent_chats"] == live["quota"]["concurrent_chats"]
    # the numbers table stays below the charts
    table = page.locator("tr", has_text=OFFERED).first.bounding_box()
    assert table["y"] > charts.bounding_box()["y"] + charts.bounding_box()["height"] - 1


@pytest.mark.timeout(180)
def test_run_from_the_web_ui_draws_the_throttling_charts(tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    scenario = tmp_path / "browser.toml"
    scenario.write_text(SCENARIO)
    reports = tmp_path / "reports"
    port = free_port()
    log = tmp_path / "locust.log"
    with running_emulator() as emu:
        args = ["--web-host", "127.0.0.1", "--web-port", str(port), "--scenario", str(scenario)]
        args += ["--endpoint-url", emu.url, "--out", str(reports)]
        with running_locust(args, log=log) as locust:
            base = f"http://127.0.0.1:{port}/"
            wait_for_http(base, locust.proc, log)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    errors: list[str] = []
                    page.on("pageerror", lambda error: errors.append(str(error)))
                    page.goto(base)
                    check_the_form(page, scenario, emu.url)
                    page.get_by_role("button", name="Start").click()

                    page.get_by_role("tab", name="Throttling").click(timeout=15_000)
                    check_the_charts(page)
                    page.locator("tr", has_text=OFFERED).first.wait_for(timeout=15_000)
                    assert total(page, OFFERED) > 0 and total(page, ACCEPTED) > 0
                    assert cell(page, OFFERED, 1).endswith("/s")
                    assert cell(page, "Stage", 1) == "browser"
                    screenshot = tmp_path / "throttling-tab.png"
                    page.screenshot(path=screenshot, full_page=True)
                    assert screenshot.stat().st_size > 10_000
                    accepted = total(page, ACCEPTED)

                    page.get_by_role("button", name="Stop").click()
                    # Locust's page polls its state only while spawning or running: a poll that lands
                    # in the stop's short "cleanup" window (users being stopped; slow on a busy
                    # machine) leaves the page showing CLEANUP for good. The server has stopped by
                    # then; a reload shows it (the page's own race, not the run's).
                    stopped = page.get_by_text("STOPPED").first
                    try:
                        stopped.wait_for(timeout=15_000)
                    except PlaywrightTimeout:
                        assert page.get_by_text("CLEANUP").count() > 0, "neither STOPPED nor CLEANUP"
                        wait_until(lambda: state_of(base) == "stopped", 60, "the runner to stop")
                        page.reload()
                        stopped.wait_for(timeout=15_000)
                    assert errors == []
                finally:
                    browser.close()

            # the run left its folder: meta.json and attempts written by the harness
            wait_until(lambda: bool(run_folders(reports)), 15, f"a run folder in {reports}")
            folder = run_folders(reports)[-1]
            meta = json.loads((folder / "meta.json").read_text())
            assert meta["run_id"] == folder.name
            wait_until(lambda: any((folder / "attempts").glob("*")), 15, "attempts files")
            ground_truth = emu.state()["operations"]["StartChatContact"]["accepted"]
            assert ground_truth >= accepted > 0
