"""The web UI end to end in a real headless Chromium (Debian's, driven by Playwright; nothing downloaded):
the scenario fields are on the start form, a run started from the form moves the Throttling tab's
numbers, stopping it from the UI leaves a run folder with meta.json and attempts."""

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


@pytest.mark.timeout(120)
def test_run_from_the_web_ui_moves_the_throttling_tab(tmp_path):
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
                    page = browser.new_page()
                    page.goto(base)
                    # the scenario fields are on the start form, filled from the command line
                    scenario_field = page.locator("input[name=scenario]")
                    scenario_field.wait_for(state="attached", timeout=15_000)
                    assert scenario_field.input_value() == str(scenario)
                    # (the UI names the fields in camelCase)
                    assert page.locator("input[name=endpointUrl]").input_value() == emu.url
                    assert page.locator("input[name=out]").input_value() == str(reports)
                    for name in ("rateMultiplier", "rate", "duration", "maxChats", "maxRate", "retryMode"):
                        assert page.locator(f"input[name={name}]").count() == 1, name
                    # the user count comes from the scenario (chatload's shape): Locust disables the field
                    users = page.locator("input[name=userCount]")
                    if users.count() and users.is_enabled():
                        users.fill("4")
                        page.locator("input[name=spawnRate]").fill("4")
                    page.get_by_role("button", name="Start").click()

                    page.get_by_role("tab", name="Throttling").click(timeout=15_000)
                    page.locator("tr", has_text=OFFERED).first.wait_for(timeout=15_000)
                    wait_until(lambda: total(page, ACCEPTED) > 0, 20, "a first accepted chat in the tab")
                    offered, accepted = total(page, OFFERED), total(page, ACCEPTED)
                    wait_until(
                        lambda: total(page, OFFERED) > offered and total(page, ACCEPTED) > accepted,
                        15,
                        "the tab's offered and accepted counts to move",
                    )
                    assert cell(page, OFFERED, 1).endswith("/s")
                    assert cell(page, "Stage", 1) == "browser"

                    page.get_by_role("button", name="Stop").click()
                    page.get_by_text("STOPPED").first.wait_for(timeout=20_000)
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
