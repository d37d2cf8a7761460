"""Shared fixtures. Under CI (CI=1) a skipped test is a failure: nothing is silently untested."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference" / "btcv-crowd"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which must run everything: {report.longrepr}"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The command line that runs this checkout's workflow in `workdir` with the test interpreter."""
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run this checkout's workflow in `workdir` with the test interpreter's snakemake."""
    return subprocess.run(
        snakemake_command(workdir, *args), capture_output=True, text=True, timeout=timeout, cwd=workdir
    )


def planned_jobs(run):
    """{rule: count} from a dry run's job table."""
    counts, table = {}, False
    for line in (run.stdout + run.stderr).splitlines():
        fields = line.split()
        if fields[:2] == ["job", "count"]:
            table = True
        elif table and len(fields) == 2 and fields[1].isdigit():
            if fields[0] == "total":
                break
            counts[fields[0]] = int(fields[1])
    return counts


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


#: A tiny study for the plumbing. The weight-free random walker keeps it fast; LiteMedSAM, the
#: default segmenter, runs in tests/test_example_ct.py on a real scan and in tests/test_litemedsam.py.
TINY = """
phantom:
  n_train: 2
  n_test: 1
  shape: [48, 40, 12]
  orientations: [RAS, LPS, LAS]
segmenter:
  kind: random_walker
nnunet:
  sources: []
"""

#: A tiny study with the nnU-Net stage: samcrowd's tiny trainer, two folds.
TINY_NNUNET = """
phantom:
  n_train: 4
  n_test: 2
  shape: [48, 48, 16]
  orientations: [RAS, LPS, LAS]
segmenter:
  kind: random_walker
nnunet:
  sources: [gt, crowd, sparse]
  configuration: 3d_fullres
  trainer: nnUNetTrainer_samcrowdTiny
  folds: 2
  device: cpu
  threads: 1
  deterministic: true
"""

#: The published study's files, copied from ../shared/reference/btcv-crowd (MIT, see its LICENSE).
BTCV_CROWD = REPO / "tests" / "data" / "btcv-crowd"
ORGANS = ["spleen", "right_kidney", "left_kidney", "liver", "aorta"]


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
#: Where tests keep what a person may want to look at afterwards (screenshots); not committed.
ARTEFACTS = Path(os.environ.get("SAMCROWD_TEST_ARTEFACTS", REPO / "test-artefacts"))


@pytest.fixture(scope="module")
def slurm():
    """A running test SLURM (tests/slurm_cluster.py); its daemons are stopped by PID when the module
    ends, pass or fail."""
    from slurm_cluster import SlurmCluster, SlurmUnavailable

    state = Path(os.environ.get("SAMCROWD_TEST_SLURM_STATE", "/tmp/samcrowd-test-slurm"))
    shutil.rmtree(state, ignore_errors=True)
    try:
        cluster = SlurmCluster.start(state)
    except SlurmUnavailable as e:
        pytest.skip(f"no test SLURM: {e}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Chromium driven by Selenium (Debian's chromium and chromium-driver)."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Debian's chromium and chromium-driver are not installed (CI installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1600,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A small randomly initialised SAM (segment_anything's modeling classes), saved as a checkpoint file."""
    import torch

    from samcrowd.segmenters import build_test_sam

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoints") / "tiny_sam.pth"
    torch.save(build_test_sam().state_dict(), path)
    return path


def sam_settings(checkpoint, kind="sam", **extra):
    return {
        "kind": kind,
        "model_type": "test_tiny",
        "checkpoint": str(checkpoint),
        "device": "cpu",
        "precision": "fp32",
        "multimask": "best",
        **extra,
    }


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """The whole workflow, nnU-Net included, run once on a tiny phantom; its folder."""
    work = tmp_path_factory.mktemp("tiny_study")
    cfg = write_config(work / "tiny.yaml", TINY_NNUNET)
    run = snakemake(work, "--cores", "2", "--configfile", str(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    return work
