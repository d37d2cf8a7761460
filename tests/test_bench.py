"""Smoke runs of the quick benchmarks, so they keep working (their figures go in issue notes)."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO


def bench(*args: str) -> str:
    run = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO / "bench", timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_gpu_check_script_runs_on_the_cpu_with_the_tiny_sam():
    out = bench("gpu_sam.py", "--tiny", "--device", "cpu", "--iters", "1", "--batches", "1", "2")
    assert "test_tiny image encoder" in out and "images/s" in out


def test_encoder_pass_benchmark_counts_one_pass_per_slice():
    out = bench("sam_encoder_passes.py", "--repeat", "1")
    line = next(row for row in out.splitlines() if row.strip().startswith("samcrowd (cached)"))
    assert line.split()[2] == "36"  # the default phantom exports 36 slices
    assert "ratio naive/samcrowd" in out


def test_real_ct_segmenter_benchmark_prints_every_method_and_profile():
    out = bench("segmenters_real.py", "--every", "8")
    for line in ("tight         litemedsam", "tight + 2 px  random_walker", "unreliable    box"):
        assert line in out, out
    assert "litemedsam image encoder: openvino, box decoder: openvino" in out


def test_cpu_speed_benchmark_reports_the_ratio_and_the_mask_agreement():
    out = bench("litemedsam_cpu.py", "--every", "10", "--rounds", "1")
    assert "throughput ratio openvino / torch:" in out and "mask agreement, Dice per box" in out
    assert "decoder throughput ratio openvino / torch:" in out and "decoder agreement:" in out


def test_gold_quality_benchmark_scores_every_profile_against_the_expert():
    out = bench("gold_quality.py", "--seeds", "2")
    assert "gold IoU on totalseg-example (30 slices, gold 0.05: 2 per plan), 2 seeds" in out, out
    for profile in ("careful", "hasty", "unreliable"):
        assert f"\n{profile:12s} median " in out, out


def test_sparse_boxes_benchmark_compares_every_completion_method_per_stride():
    out = bench("sparse_boxes.py", "--strides", "1", "3", "--boxes", "tight")
    for method in ("none", "distance", "segmenter"):
        assert re.search(rf"\| tight \+ 2 px \|\s+3 \|\s+\d+ \| {method}\s+\|", out), out
    assert "tight + 2 px, stride 3: segmenter " in out and "segmenter / every slice boxed = " in out, out


def test_round_checkpoint_benchmark_times_the_boundary_against_a_checkpoint_write(tmp_path):
    out = bench("round_checkpoint.py", "--repeats", "1", "--folder", str(tmp_path))
    assert "30.8 M parameters" in out  # nnU-Net's 3d_fullres network, as planned for abdominal CT
    assert re.search(r"kept in memory \(serialise \+ read back\): [\d.]+ s per epoch", out)
    assert re.search(r"kept / written = [\d.]+", out)
