"""recai.stats: bootstrap intervals, the paired bootstrap and paired tests of per-user values."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from recai.stats import bootstrap_intervals, paired_bootstrap, paired_test


def test_bootstrap_intervals_match_a_plain_resampling_loop() -> None:
    """The vectorised resampling draws exactly what a per-resample loop over the same generator
    draws (one ``integers(0, n, size=(chunk, n))`` call per chunk)."""
    rng = np.random.default_rng(1)
    values = rng.random((40, 3))
    low, high = bootstrap_intervals(values, 300, seed=7)
    draws = np.random.default_rng(7).integers(0, 40, size=(300, 40))
    means = values[draws].mean(axis=1)
    expect_low, expect_high = np.percentile(means, [2.5, 97.5], axis=0)
    np.testing.assert_allclose(low, expect_low, rtol=1e-12)
    np.testing.assert_allclose(high, expect_high, rtol=1e-12)


def test_bootstrap_intervals_are_seeded_and_cover_the_mean() -> None:
    values = np.random.default_rng(0).random((200, 2))
    low, high = bootstrap_intervals(values, 500, seed=3)
    assert (low < values.mean(axis=0)).all() and (values.mean(axis=0) < high).all()
    again = bootstrap_intervals(values, 500, seed=3)
    assert np.array_equal(low, again[0]) and np.array_equal(high, again[1])
    assert not np.array_equal(low, bootstrap_intervals(values, 500, seed=4)[0])
    narrow = bootstrap_intervals(values, 500, seed=3, level=0.5)
    assert (narrow[0] > low).all() and (narrow[1] < high).all()


def test_bootstrap_intervals_of_nothing_are_nan() -> None:
    low, high = bootstrap_intervals(np.empty((0, 2)), 100, seed=0)
    assert low.shape == (2,) and np.isnan(low).all() and np.isnan(high).all()
    low, high = bootstrap_intervals(np.ones(5), 0, seed=0)
    assert np.isnan(low).all() and np.isnan(high).all()


def test_one_seed_pairs_the_intervals_of_two_systems() -> None:
    """Same seed, same resamples: a system that is another plus a constant gets the same
    interval shifted by that constant."""
    a = np.random.default_rng(2).random(100)
    low_a, high_a = bootstrap_intervals(a, 400, seed=9)
    low_b, high_b = bootstrap_intervals(a + 0.25, 400, seed=9)
    np.testing.assert_allclose(low_b - low_a, 0.25)
    np.testing.assert_allclose(high_b - high_a, 0.25)


def test_paired_bootstrap_finds_a_small_consistent_gain_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((300, 1))
    gain = paired_bootstrap(a, a + 0.01 + rng.normal(scale=0.002, size=a.shape), 1000, seed=0)
    assert gain["low"][0] > 0 and gain["p"][0] == pytest.approx(1 / 1000)  # the floor
    same = paired_bootstrap(a, a.copy(), 1000, seed=0)
    assert same["delta"][0] == 0 and same["p"][0] == 1.0
    noise = paired_bootstrap(a, rng.permutation(a), 1000, seed=0)
    assert noise["low"][0] < 0 < noise["high"][0] and noise["p"][0] > 0.05


def test_paired_bootstrap_refuses_unpaired_shapes() -> None:
    with pytest.raises(ValueError, match=r"same shape, got \(3, 1\) and \(4, 1\)"):
        paired_bootstrap(np.zeros((3, 1)), np.zeros((4, 1)), 10, seed=0)


def test_paired_tests_agree_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(4)
    a = rng.random(60)
    b = a + rng.normal(0.05, 0.1, 60)
    assert paired_test(a, b, "t") == ("paired t-test", pytest.approx(stats.ttest_rel(b, a).pvalue))
    name, p = paired_test(a, b, "wilcoxon")
    assert name == "Wilcoxon signed-rank" and p == pytest.approx(stats.wilcoxon(b - a).pvalue)
    assert paired_test(a, a, "wilcoxon") == ("Wilcoxon signed-rank", 1.0)
    assert paired_test(a, a + 1.0, "t") == ("paired t-test", 0.0)  # constant difference
    assert paired_test(a[:1], b[:1])[0] == "none (fewer than 2 pairs)"


def test_without_scipy_a_seeded_sign_flip_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy", None)
    rng = np.random.default_rng(5)
    a = rng.random(80)
    name, p = paired_test(a, a + 0.2)
    assert name == "sign-flip permutation" and p == pytest.approx(1 / 10_001)
    noisy = a + rng.normal(scale=0.05, size=80)
    assert paired_test(a, noisy, seed=3) == paired_test(a, noisy, seed=3)
    assert paired_test(a, a) == ("sign-flip permutation", 1.0)


def test_importing_recai_stats_imports_no_scipy() -> None:
    code = "import sys, recai.stats; print(any(m.split('.')[0] == 'scipy' for m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"
