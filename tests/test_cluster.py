"""The cluster's time limit: rounds that fit it, requests capped at it, SLURM's partitions read and checked."""

from __future__ import annotations

import pytest

from samcrowd import cluster
from samcrowd.errors import SamcrowdError


def test_a_training_longer_than_the_limit_is_shared_among_as_many_rounds_as_it_needs():
    assert cluster.rounds(1440, 0) == 1  # no limit: one job
    assert cluster.rounds(1440, 1440) == 1
    assert cluster.rounds(1441, 1440) == 2
    assert cluster.rounds(2880, 1440) == 2 and cluster.round_minutes(2880, 1440) == 1440
    assert cluster.rounds(3000, 1440) == 3 and cluster.round_minutes(3000, 1440) == 1000
    assert cluster.round_minutes(3, 1) == 1 and cluster.round_minutes(120, 0) == 120


def test_rounds_share_the_epochs_evenly_and_the_last_ends_the_training():
    assert [cluster.epoch_target(r, 3, 1000) for r in (1, 2, 3)] == [334, 667, 1000]
    assert [cluster.epoch_target(r, 2, 1000) for r in (1, 2)] == [500, 1000]
    assert [cluster.epoch_target(r, 3, 6) for r in (1, 2, 3)] == [2, 4, 6]
    assert [cluster.epoch_target(r, 4, 2) for r in (1, 2, 3, 4)] == [1, 1, 2, 2]  # more rounds than epochs
    with pytest.raises(ValueError, match="round 4 is not one of 1..3"):
        cluster.epoch_target(4, 3, 6)


def test_retries_ask_for_more_time_but_never_above_the_limit():
    assert [cluster.request(60, attempt, 0) for attempt in (1, 2, 3)] == [60, 120, 180]
    assert [cluster.request(60, attempt, 100) for attempt in (1, 2, 3)] == [60, 100, 100]
    assert cluster.request(1440, 2, 1440) == 1440


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("1:00", 1),
        ("30", 30),
        ("90:30", 90),
        ("2:00:00", 120),
        ("1-00:00:00", 1440),
        ("2-12", 3600),
        ("7-00:30", 10110),
        ("infinite", None),
        ("UNLIMITED", None),
    ],
)
def test_slurm_time_limits_read_as_whole_minutes(text, minutes):
    assert cluster.slurm_minutes(text) == minutes


def test_an_unreadable_time_limit_is_named():
    with pytest.raises(SamcrowdError, match="not a SLURM time limit: '1 day'"):
        cluster.slurm_minutes("1 day")


SINFO = "main* infinite\ngpu 1-00:00:00\nshort 1:00\n"


def test_sinfo_gives_each_partitions_limit_and_the_default_partition():
    partitions = cluster.parse_sinfo(SINFO)
    assert partitions.limits == {"main": None, "gpu": 1440, "short": 1}
    assert partitions.default == "main" and partitions.shown["gpu"] == "1-00:00:00"


def test_a_request_or_a_cap_above_its_partitions_limit_is_named_in_one_line():
    partitions = cluster.parse_sinfo(SINFO)
    key = "config: key 'nnunet.train_resources.runtime'"
    fits = [cluster.Request("nnunet_train", 1440, "gpu", key), cluster.Request("fuse", 600, None, "x")]
    assert cluster.over_limit(fits, partitions, 0) is None
    assert cluster.over_limit(fits, partitions, 1440) is None
    assert cluster.over_limit(fits, partitions, 2880) == (
        "config: key 'cluster.max_job_minutes': 2880 min is more than partition 'gpu' allows "
        "(MaxTime 1-00:00:00 = 1440 min, rule nnunet_train); set it to 1440 or less"
    )
    too_long = [cluster.Request("nnunet_train", 2880, "gpu", key)]
    assert cluster.over_limit(too_long, partitions, 0) == (
        "config: key 'nnunet.train_resources.runtime': rule nnunet_train asks 2880 min, more than partition 'gpu' "
        "allows (MaxTime 1-00:00:00 = 1440 min); set 'cluster.max_job_minutes: 1440' to cap every request there "
        "(nnU-Net then trains in rounds)"
    )
    # the default partition has no limit; an unknown partition is SLURM's to refuse
    assert cluster.over_limit([cluster.Request("fuse", 10**6, None, "x")], partitions, 0) is None
    assert cluster.over_limit([cluster.Request("fuse", 10**6, "nope", "x")], partitions, 0) is None


def test_a_warning_that_would_stop_a_job_in_its_first_half_is_refused():
    assert cluster.warning_seconds("'--signal=URG@900'") == 900
    assert cluster.warning_seconds("--qos=long --signal B:USR1@60") == 60
    assert cluster.warning_seconds("--qos=long") is None and cluster.warning_seconds(None) is None
    partitions = cluster.parse_sinfo(SINFO)
    key = "config: key 'nnunet.train_resources.runtime'"
    assert cluster.over_limit([cluster.Request("nnunet_train", 30, "gpu", key, 900)], partitions, 0) is None
    assert cluster.over_limit([cluster.Request("nnunet_train", 20, "gpu", key, 900)], partitions, 0) == (
        "set-resources nnunet_train:slurm_extra: SLURM's warning 900 s before the end of a 20-min job would stop it "
        "in its first half; ask for fewer seconds, or more minutes (config: key 'nnunet.train_resources.runtime')"
    )
