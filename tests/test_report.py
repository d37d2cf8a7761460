"""The Snakemake report of a finished run opens in headless Chromium without errors and shows Table 1."""

from __future__ import annotations

import time

import pytest
from conftest import snakemake


@pytest.fixture(scope="module")
def report(tiny_study):
    run = snakemake(tiny_study, "--report", "results/report.html", "--configfile", str(tiny_study / "tiny.yaml"))
    assert run.returncode == 0, run.stderr[-2000:]
    return tiny_study / "results/report.html"


def open_result(driver, category: str, path: str) -> str:
    """Navigate the report to a result and return the text its viewer shows."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//*[normalize-space(text())='{category}']").click()
    time.sleep(0.5)
    row = driver.find_element(By.XPATH, f"//td[normalize-space(.)='{path}']/..")
    row.find_element(By.XPATH, ".//*[@iconname='eye']").click()
    time.sleep(1)
    frame = driver.find_element(By.TAG_NAME, "iframe")
    driver.switch_to.frame(frame)
    text = driver.find_element(By.TAG_NAME, "body").text
    driver.switch_to.default_content()
    return text


def test_the_report_opens_and_shows_table1_and_the_provenance(report, browser, tiny_study):
    from selenium.webdriver.common.by import By

    browser.get(report.as_uri())
    time.sleep(2)
    page = browser.find_element(By.TAG_NAME, "body").text
    for part in (
        "samcrowd: crowdsourced boxes",
        "2. Crowd labels",
        "3. nnU-Net",
        "4. Table 1",
        "5. Provenance",
        "Statistics",
    ):
        assert part in page, part
    table = open_result(browser, "4. Table 1", "results/tables/table1.html")
    expected = (tiny_study / "results/tables/table1.md").read_text().splitlines()
    rows = [line for line in expected if line.startswith("| ") and not line.startswith("| organ")]
    assert len(rows) == 6
    for line in rows:  # every organ row of table1.md, cell by cell, is on the page
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert " ".join(cells) in table, cells
    browser.get(report.as_uri())
    time.sleep(2)
    provenance = open_result(browser, "5. Provenance", "results/tables/provenance.html")
    assert "segmenter.checkpoint_sha256" in provenance and "version.nnunetv2" in provenance
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe
