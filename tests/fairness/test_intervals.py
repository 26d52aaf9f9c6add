"""Tests of :mod:`pipelines.fairness.intervals`.

Three kinds: values checked against published tables or an independent (brute-force)
implementation; properties (decision == interval vs bound, permutation invariance,
Monte Carlo error estimates that match the seed-to-seed spread); and a fast,
fixed-seed calibration study at the demo's group sizes and 4x them: a gate whose
groups sit exactly on the bound is declared ``fail`` at most 2.5% of the time (plus
Monte Carlo tolerance), and the pass rate well inside the bound is within 10
percentage points of the best possible test's.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy import optimize, special, stats
from sklearn.metrics import roc_auc_score

from pipelines.fairness import intervals as iv

ALPHA = 0.025
NEGATIVES = np.array([38, 26, 23, 17, 25])   # the demo's 300-row audit sample, per group
POSITIVES = np.array([31, 28, 29, 30, 53])
TWINS = np.array([69, 54, 43, 47, 78])


def test_module_examples_run():
    from pipelines.fairness import _binomial, _decide, _delong, _gaps, _resampling

    attempted = failed = 0
    for module in (_binomial, _decide, _delong, _gaps, _resampling):
        f, a = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        failed, attempted = failed + f, attempted + a
    assert attempted > 20 and failed == 0


# -- proportions ------------------------------------------------------------------------------------------------

# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat Med 17:857, Table II
# (Wilson score and Clopper-Pearson columns); Jeffreys from statsmodels 0.14.4 proportion_confint("jeffreys").
PUBLISHED = [
    # x, n, Wilson, Clopper-Pearson, Jeffreys
    (81, 263, (0.2553, 0.3662), (0.2527, 0.3676), (0.2545, 0.3656)),
    (15, 148, (0.0624, 0.1605), (0.0578, 0.1617), (0.0604, 0.1576)),
    (0, 20, (0.0000, 0.1611), (0.0000, 0.1684), (0.0000, 0.1166)),
    (1, 29, (0.0061, 0.1718), (0.0009, 0.1776), (0.0037, 0.1501)),
]


@pytest.mark.parametrize("x, n, wilson, cp, jeffreys", PUBLISHED)
def test_proportion_intervals_match_published_values(x, n, wilson, cp, jeffreys):
    for method, want in (("wilson", wilson), ("clopper-pearson", cp), ("jeffreys", jeffreys)):
        low, high = iv.proportion_interval(events=x, trials=n, method=method)
        assert (round(float(low), 4), round(float(high), 4)) == want, method


def test_clopper_pearson_ends_solve_the_binomial_tail_equations():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 200, size=300)
    x = rng.integers(0, n + 1)
    low, high = iv.proportion_interval(events=x, trials=n, level=0.9)
    inner = (x > 0) & (x < n)
    assert np.allclose(stats.binom.cdf(x[x < n], n[x < n], high[x < n]), 0.05, atol=1e-9)
    assert np.allclose(stats.binom.sf(x[inner] - 1, n[inner], low[inner]), 0.05, atol=1e-9)
    assert (low[x == 0] == 0).all() and (high[x == n] == 1).all()


def test_zero_events_give_a_nonzero_upper_end():
    # the case: 0 flips among 54 twins; the exact 95% upper end is 1 - 0.025 ** (1 / 54)
    low, high = iv.proportion_interval(events=0, trials=54)
    assert float(low) == 0.0 and float(high) == pytest.approx(1 - 0.025 ** (1 / 54), abs=1e-12)
    assert round(float(high), 3) == 0.066
    for method in iv.PROPORTION_METHODS:
        lo, hi = iv.proportion_interval(events=[0, 54], trials=[54, 54], method=method)
        assert hi[0] > 0.04 and lo[1] < 0.96


@pytest.mark.parametrize("method", iv.PROPORTION_METHODS)
def test_pvalues_decide_exactly_as_the_intervals(method):
    rng = np.random.default_rng(1)
    n = rng.integers(1, 120, size=2000)
    x = rng.integers(0, n + 1)
    b = rng.uniform(0.02, 0.98, size=2000)
    low, high = iv.proportion_interval(events=x, trials=n, method=method)
    for bound in np.unique(np.round(b, 2))[:40]:
        p_below, p_above = iv.proportion_pvalues(events=x, trials=n, bound=bound, method=method)
        clear = (np.abs(high - bound) > 1e-9) & (np.abs(low - bound) > 1e-9)
        assert ((p_below <= ALPHA) == (high <= bound))[clear].all()
        assert ((p_above <= ALPHA) == (low >= bound))[clear].all()


def test_clopper_pearson_pvalues_are_the_binomial_tails():
    x, n = np.array([0, 3, 7, 20]), np.array([20, 20, 20, 20])
    p_below, p_above = iv.proportion_pvalues(events=x, trials=n, bound=0.3)
    assert np.allclose(p_below[:3], stats.binom.cdf(x[:3], 20, 0.3))
    assert np.allclose(p_above[1:], stats.binom.sf(x[1:] - 1, 20, 0.3))
    assert p_below[3] == 1.0 and p_above[0] == 1.0


def test_effective_counts_are_continuous_in_the_counts():
    lo_int, hi_int = iv.proportion_interval(events=5, trials=20)
    lo, hi = iv.proportion_interval(events=[4.5, 5.0, 5.5], trials=[20.0, 20.0, 20.0])
    assert lo[1] == lo_int and hi[1] == hi_int and lo[0] < lo[1] < lo[2] and hi[0] < hi[1] < hi[2]


def test_effective_counts_design_effects():
    # clusters of one item: deff = n / (n - 1) (the small-sample factor only)
    y = np.array([1, 0, 0, 1, 0, 1, 1, 0, 0, 0])
    e, n = iv.effective_counts(successes=y, sizes=np.ones(10), cluster_group=np.zeros(10, int), n_groups=1)
    assert n[0] == pytest.approx(9.0) and e[0] / n[0] == pytest.approx(0.4)
    # a group without clusters and a constant group (variance 0: deff floored at 1)
    e, n = iv.effective_counts(successes=[2, 2], sizes=[3, 3], cluster_group=[1, 1], n_groups=3)
    assert e.tolist() == [0.0, 4.0, 0.0] and n.tolist() == [0.0, 6.0, 0.0]


# -- multiplicity -----------------------------------------------------------------------------------------------

def _holm_loop(p):
    order = np.argsort(p)
    m = len(p)
    out = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def test_holm_and_bonferroni_match_their_definitions():
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 0.2, size=(50, 7))
    holm = iv.adjust_pvalues(pvalues=p, method="holm")
    assert np.allclose(holm, np.array([_holm_loop(row) for row in p]))
    assert np.allclose(iv.adjust_pvalues(pvalues=p, method="bonferroni"), np.minimum(1, 7 * p))
    assert np.allclose(iv.adjust_pvalues(pvalues=p.T, method="holm", axis=0), holm.T)
    assert np.array_equal(iv.adjust_pvalues(pvalues=p, method="none"), p)
    with_nan = iv.adjust_pvalues(pvalues=[0.01, np.nan, 0.02], method="holm")
    assert np.isnan(with_nan[1]) and np.allclose(with_nan[[0, 2]], [0.02, 0.02])


def test_gate_multiplicity_acts_on_fail_only():
    # every group clearly beyond the bound alone, but only just: Holm lets some fail, no adjustment all
    x, n = np.array([14, 14, 14]), np.array([20, 20, 20])
    none = iv.rate_gate(events=x, trials=n, bound=0.45, direction="max", multiplicity="none")
    holm = iv.rate_gate(events=x, trials=n, bound=0.45, direction="max", multiplicity="holm")
    bonf = iv.rate_gate(events=x, trials=n, bound=0.45, direction="max", multiplicity="bonferroni")
    raw = stats.binom.sf(13, 20, 0.45)
    assert np.allclose(none.p_fail, raw) and np.allclose(bonf.p_fail, min(1, 3 * raw))
    assert none.status.tolist() == [iv.FAIL] * 3
    assert (holm.status == iv.FAIL).all() == (3 * raw <= ALPHA)
    # pass is never adjusted: the same three groups far inside pass whatever the method
    for mult in iv.MULTIPLICITY_METHODS:
        d = iv.rate_gate(events=[1, 1, 1], trials=[20, 20, 20], bound=0.45, direction="max", multiplicity=mult)
        assert d.verdict.item() == iv.PASS


def test_rollup_and_empty_gate():
    d = iv.rate_gate(events=np.zeros((2, 0)), trials=np.ones((2, 0)), bound=0.2, direction="max")
    assert d.verdict.tolist() == [iv.INSUFFICIENT, iv.INSUFFICIENT]
    d = iv.rate_gate(events=[[0, 18], [0, 9], [0, 0]], trials=[[40, 20], [40, 20], [40, 20]], bound=0.3,
                     direction="max")
    assert d.verdict.tolist() == [iv.FAIL, iv.INSUFFICIENT, iv.PASS]


def test_min_direction_mirrors_max():
    a = iv.rate_gate(events=[1, 9, 18], trials=[20, 20, 20], bound=0.3, direction="max")
    b = iv.rate_gate(events=[19, 11, 2], trials=[20, 20, 20], bound=0.7, direction="min")
    assert a.status.tolist() == b.status.tolist() == [iv.PASS, iv.INSUFFICIENT, iv.FAIL]
    assert np.allclose(a.p_pass, b.p_pass) and np.allclose(a.p_fail, b.p_fail)


# -- validation -------------------------------------------------------------------------------------------------

def test_bounds_and_inputs_are_checked():
    with pytest.raises(ValueError, match=r"Rates are fractions in \[0, 1\]; did you mean 0\.20\?"):
        iv.flip_rate_gate(flips=[1], twins=[50], bound=20)
    with pytest.raises(ValueError, match=r"did you mean 0\.025\?"):
        iv.rate_gate(events=[1], trials=[50], bound=2.5, direction="max")
    with pytest.raises(ValueError, match=r"AUCs are fractions in \[0, 1\]; did you mean 0\.60\?"):
        iv.auc_gate(auc=[0.7], variance=[0.001], n_positive=[50], n_negative=[20], bound=60)
    with pytest.raises(ValueError, match=r"finite number in \[0, 1\]"):
        iv.rate_gate(events=[1], trials=[50], bound=float("nan"), direction="max")
    with pytest.raises(ValueError, match=r"finite number in \[0, 1\]"):
        iv.gap_gate(events=[1, 2], trials=[5, 5], bound=float("inf"))
    with pytest.raises(ValueError, match="`level` must be a number strictly between 0.5 and 1"):
        iv.proportion_interval(events=1, trials=5, level=95)
    with pytest.raises(ValueError, match=r"`events` must lie in \[0, `trials`\]"):
        iv.proportion_interval(events=[6], trials=[5])
    with pytest.raises(ValueError, match="`direction` must be one of 'max', 'min'"):
        iv.rate_gate(events=[1], trials=[5], bound=0.5, direction="maximum")
    with pytest.raises(ValueError, match="at least 2 groups"):
        iv.gap_gate(events=[1], trials=[5], bound=0.3)
    with pytest.raises(ValueError, match="`multiplicity` must be one of"):
        iv.rate_gate(events=[1], trials=[5], bound=0.5, direction="max", multiplicity="sidak")


# -- difference of two proportions: Miettinen-Nurminen ---------------------------------------------------------

def _mn_z_brute(x1, n1, x2, n2, delta):
    """Score statistic with the restricted MLE found numerically (independent of the closed form)."""
    lo, hi = max(0.0, -delta), min(1.0, 1.0 - delta)

    def nll(p2):
        p1 = p2 + delta
        return -(special.xlogy(x1, p1) + special.xlogy(n1 - x1, 1 - p1) + special.xlogy(x2, p2)
                 + special.xlogy(n2 - x2, 1 - p2))

    res = optimize.minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13})
    p2 = min((res.x, lo, hi), key=nll)
    p1 = p2 + delta
    var = (p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2) * (n1 + n2) / (n1 + n2 - 1)
    num = x1 / n1 - x2 / n2 - delta
    return 0.0 if num == 0 else num / np.sqrt(var)


def _mn_interval_brute(x1, n1, x2, n2, level=0.95):
    z = stats.norm.isf((1 - level) / 2)
    d = x1 / n1 - x2 / n2
    upper = 1.0 if d >= 1 else optimize.brentq(lambda t: _mn_z_brute(x1, n1, x2, n2, t) + z, d, 1 - 1e-10,
                                               xtol=1e-12)
    lower = -1.0 if d <= -1 else optimize.brentq(lambda t: _mn_z_brute(x1, n1, x2, n2, t) - z, -1 + 1e-10, d,
                                                 xtol=1e-12)
    return lower, upper


TABLES = [(56, 70, 48, 80), (7, 20, 3, 25), (12, 17, 20, 38), (0, 17, 8, 23), (0, 10, 0, 20), (10, 10, 0, 20),
          (9, 10, 3, 10), (5, 56, 0, 29), (17, 17, 25, 26), (1, 38, 12, 17)]


@pytest.mark.parametrize("table", TABLES)
def test_miettinen_nurminen_matches_a_brute_force_implementation(table):
    x1, n1, x2, n2 = table
    low, high = iv.difference_interval(events1=x1, trials1=n1, events2=x2, trials2=n2)
    want = _mn_interval_brute(x1, n1, x2, n2)
    assert float(low) == pytest.approx(want[0], abs=2e-6) and float(high) == pytest.approx(want[1], abs=2e-6)
    for delta in (-0.3, 0.0, 0.3):
        pb, _ = iv.difference_pvalues(events1=x1, trials1=n1, events2=x2, trials2=n2, margin=delta)
        assert float(pb) == pytest.approx(stats.norm.cdf(_mn_z_brute(x1, n1, x2, n2, delta)), abs=1e-6)


def test_miettinen_nurminen_published_example():
    # Newcombe (1998), "Interval estimation for the difference between independent proportions", Table II:
    # 56/70 - 48/80, Miettinen-Nurminen score interval 0.0528 to 0.3382.
    # (statsmodels 0.14.4 gives 0.0526 to 0.3440: its restricted MLE has a wrong cubic coefficient,
    # statsmodels issue #10269.)
    low, high = iv.difference_interval(events1=56, trials1=70, events2=48, trials2=80)
    assert (round(float(low), 4), round(float(high), 4)) == (0.0528, 0.3382)


# -- gaps -------------------------------------------------------------------------------------------------------

def _random_tables(rng, reps, g, n_max=60):
    n = rng.integers(5, n_max, size=(reps, g))
    spread = rng.uniform(0, 1, size=(reps, 1))          # from near-equal rates to any rates
    p = rng.uniform(0, 1, size=(reps, 1)) * (1 - spread) + rng.uniform(0, 1, size=(reps, g)) * spread
    return rng.binomial(n, p), n


def test_gap_decision_is_interval_versus_bound():
    rng = np.random.default_rng(3)
    x, n = _random_tables(rng, 400, 4)
    seen = set()
    for bound in (0.1, 0.3):
        d = iv.gap_gate(events=x, trials=n, bound=bound)
        low, high = d.low[..., 0], d.high[..., 0]
        clear = (np.abs(high - bound) > 1e-7) & (np.abs(low - bound) > 1e-7)
        status = d.status[..., 0]
        assert ((status == iv.PASS) == (high <= bound))[clear].all()
        assert ((status == iv.FAIL) == (low > bound))[clear].all()
        assert (low <= d.estimate[..., 0] + 1e-12).all() and (d.estimate[..., 0] <= high + 1e-12).all()
        seen |= set(status.tolist())
    assert seen == {iv.PASS, iv.FAIL, iv.INSUFFICIENT}


def test_gap_interval_from_pairwise_limits():
    x, n = np.array([5, 12, 9]), np.array([30, 25, 40])
    d = iv.gap_gate(events=x, trials=n, bound=0.3)
    # upper end: the largest one-sided 97.5% limit of |p_i - p_j|; lower end: the same at alpha / (2 * 3 pairs)
    ups, lows = [], []
    for i, j in ((0, 1), (0, 2), (1, 2)):
        lo, hi = iv.difference_interval(events1=x[i], trials1=n[i], events2=x[j], trials2=n[j])
        ups.append(max(hi, -lo))
        lo6, hi6 = iv.difference_interval(events1=x[i], trials1=n[i], events2=x[j], trials2=n[j],
                                          level=1 - 2 * ALPHA / 6)
        lows.append(max(lo6, -hi6, 0.0))
    assert float(d.high[0]) == pytest.approx(max(ups), abs=1e-9)
    assert float(d.low[0]) == pytest.approx(max(lows), abs=1e-9)


def test_gap_is_invariant_to_group_order():
    rng = np.random.default_rng(4)
    x, n = _random_tables(rng, 50, 5)
    perm = rng.permutation(5)
    a = iv.gap_gate(events=x, trials=n, bound=0.3)
    b = iv.gap_gate(events=x[:, perm], trials=n[:, perm], bound=0.3)
    assert np.array_equal(a.status, b.status) and np.allclose(a.low, b.low) and np.allclose(a.high, b.high)


def test_equalized_odds_is_the_larger_gap_and_needs_both_to_pass():
    rng = np.random.default_rng(5)
    tp, pos = _random_tables(rng, 300, 3)
    fp, neg = _random_tables(rng, 300, 3)
    eo = iv.equalized_odds_gate(tp=tp, positives=pos, fp=fp, negatives=neg, bound=0.35)
    t = iv.gap_gate(events=tp, trials=pos, bound=0.35)
    f = iv.gap_gate(events=fp, trials=neg, bound=0.35)
    assert np.allclose(eo.estimate, np.maximum(t.estimate, f.estimate))
    assert np.allclose(eo.high, np.maximum(t.high, f.high))
    both = (t.status == iv.PASS) & (f.status == iv.PASS)
    assert np.array_equal(eo.status == iv.PASS, both)
    # a fail of the pair needs more evidence than a fail of one rate alone (twice the one-sided tests)
    assert (eo.low <= np.maximum(t.low, f.low) + 1e-12).all()


# -- AUC --------------------------------------------------------------------------------------------------------

def _delong_loops(pos, neg):
    m, n = len(pos), len(neg)
    psi = np.array([[1.0 if p > q else 0.5 if p == q else 0.0 for q in neg] for p in pos])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    s10 = ((v10 - v10.mean()) ** 2).sum() / (m - 1)
    s01 = ((v01 - v01.mean()) ** 2).sum() / (n - 1)
    return psi.mean(), s10 / m + s01 / n


def test_delong_matches_an_explicit_double_loop_and_sklearn():
    rng = np.random.default_rng(6)
    for ties in (False, True):
        pos = rng.normal(0.5, 1, size=(3, 40))
        neg = rng.normal(0.0, 1, size=(3, 25))
        if ties:
            pos, neg = np.round(pos, 0), np.round(neg, 0)
        auc, var = iv.delong_auc(positive_scores=pos, negative_scores=neg)
        for r in range(3):
            a, v = _delong_loops(pos[r], neg[r])
            assert auc[r] == pytest.approx(a, abs=1e-12) and var[r] == pytest.approx(v, abs=1e-12)
            y = np.r_[np.ones(40), np.zeros(25)]
            assert auc[r] == pytest.approx(roc_auc_score(y, np.r_[pos[r], neg[r]]), abs=1e-12)


def test_bias_auc_delong_uses_the_borkan_subsets():
    rng = np.random.default_rng(7)
    g = rng.choice(["a", "b", "c"], size=300)
    y = rng.integers(0, 2, size=300)
    s = rng.normal(size=300) + y + (g == "b") * 0.5
    for kind in ("subgroup", "bpsn", "bnsp"):
        r = iv.bias_auc_delong(scores=s, labels=y, groups=g, kind=kind)
        for i, name in enumerate(r["group"]):
            inside = g == name
            keep = {"subgroup": inside, "bpsn": (inside & (y == 0)) | (~inside & (y == 1)),
                    "bnsp": (inside & (y == 1)) | (~inside & (y == 0))}[kind]
            assert r["auc"][i] == pytest.approx(roc_auc_score(y[keep], s[keep]), abs=1e-12)


def test_auc_interval_is_logit_wald_or_wilson_when_degenerate():
    z = stats.norm.isf(ALPHA)
    low, high = iv.auc_interval(auc=[0.8], variance=[0.0016], n_positive=[100], n_negative=[30])
    se = 0.04 / (0.8 * 0.2)
    assert np.allclose([low[0], high[0]], special.expit(special.logit(0.8) + np.array([-z, z]) * se))
    low, high = iv.auc_interval(auc=[1.0], variance=[0.0], n_positive=[140], n_negative=[17])
    wl, wh = iv.proportion_interval(events=17, trials=17, method="wilson")
    assert low[0] == pytest.approx(float(wl)) and high[0] == 1.0 and low[0] < 0.85


def test_auc_gate_undefined_auc_is_insufficient():
    d = iv.auc_gate(auc=[0.9, np.nan], variance=[0.001, np.nan], n_positive=140, n_negative=[25, 1], bound=0.6)
    assert d.status.tolist() == [iv.PASS, iv.INSUFFICIENT] and np.isnan(d.low[1])
    assert d.verdict.item() == iv.INSUFFICIENT


def test_auc_gate_decides_as_its_interval():
    rng = np.random.default_rng(8)
    auc = rng.uniform(0.4, 0.95, size=500)
    var = rng.uniform(0.0005, 0.01, size=500)
    d = iv.auc_gate(auc=auc, variance=var, n_positive=np.full(500, 140), n_negative=np.full(500, 25), bound=0.6,
                    multiplicity="none")
    assert np.array_equal(d.status == iv.PASS, d.low >= 0.6)
    assert np.array_equal(d.status == iv.FAIL, d.high < 0.6)


# -- bootstrap --------------------------------------------------------------------------------------------------

def test_percentile_interval_is_the_quantiles():
    rng = np.random.default_rng(9)
    reps = rng.normal(size=(999, 3))
    bi = iv.bootstrap_interval(estimate=np.zeros(3), replicates=reps, method="percentile")
    assert np.allclose(bi.low, np.quantile(reps, 0.025, axis=0)) and np.allclose(bi.high, np.quantile(reps, 0.975,
                                                                                                     axis=0))


def test_bca_matches_the_textbook_formulas():
    rng = np.random.default_rng(10)
    x = rng.exponential(size=30)
    reps = rng.choice(x, size=(5000, 30)).mean(axis=1)
    jk = (x.sum() - x) / 29
    bi = iv.bootstrap_interval(estimate=x.mean(), replicates=reps, jackknife=jk)
    # Efron and Tibshirani (1993), eqs. 14.10, 14.14, 14.15 (no ties with a continuous statistic)
    z0 = stats.norm.ppf(np.mean(reps < x.mean()))
    d = jk.mean() - jk
    a = (d ** 3).sum() / (6 * (d ** 2).sum() ** 1.5)
    q = [stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in stats.norm.ppf([0.025, 0.975])]
    assert float(bi.z0) == pytest.approx(z0) and float(bi.acceleration) == pytest.approx(a)
    assert float(bi.low) == pytest.approx(np.quantile(reps, q[0])) and float(bi.high) == pytest.approx(
        np.quantile(reps, q[1]))


def test_monte_carlo_error_of_the_ends_matches_the_spread_over_seeds():
    x = np.random.default_rng(11).gamma(2.0, 1.0, size=40)
    jk = (x.sum() - x) / 39
    ends, ses = [], []
    for seed in range(150):
        reps = x[np.random.default_rng(seed).integers(0, 40, size=(1000, 40))].mean(axis=1)
        bi = iv.bootstrap_interval(estimate=x.mean(), replicates=reps, jackknife=jk)
        ends.append([bi.low, bi.high])
        ses.append([bi.low_mc_se, bi.high_mc_se])
    spread = np.std(np.array(ends, dtype=float), axis=0, ddof=1)
    estimate = np.median(np.array(ses, dtype=float), axis=0)
    assert np.all(np.abs(estimate / spread - 1) < 0.3), (estimate, spread)


def test_bootstrap_pvalues_invert_the_interval():
    rng = np.random.default_rng(12)
    x = rng.exponential(size=50)
    reps = rng.choice(x, size=(20000, 50)).mean(axis=1)[:, None]
    jk = ((x.sum() - x) / 49)[:, None]
    bi = iv.bootstrap_interval(estimate=x.mean(keepdims=True), replicates=reps, jackknife=jk)
    at_high = iv.bootstrap_gate(estimate=x.mean(keepdims=True), replicates=reps, jackknife=jk,
                                bound=float(bi.high[0]), direction="max", bound_range=(0, 10))
    at_low = iv.bootstrap_gate(estimate=x.mean(keepdims=True), replicates=reps, jackknife=jk,
                               bound=float(bi.low[0]), direction="max", bound_range=(0, 10), multiplicity="none")
    assert float(at_high.p_pass[0]) == pytest.approx(ALPHA, abs=0.002)
    assert float(at_low.p_fail[0]) == pytest.approx(ALPHA, abs=0.002)
    # both sit exactly on the bound: not claimed
    assert at_high.near_bound[0] and at_high.status[0] == iv.INSUFFICIENT


def test_bootstrap_gate_needs_half_the_replicates():
    reps = np.full((100, 2), np.nan)
    reps[:, 0] = np.linspace(0, 0.1, 100)
    reps[:40, 1] = 0.05
    d = iv.bootstrap_gate(estimate=[0.05, 0.05], replicates=reps, bound=0.5, direction="max", method="percentile")
    assert d.status.tolist() == [iv.PASS, iv.INSUFFICIENT] and np.isnan(d.high[1])


def test_adaptive_bootstrap_stops_early_far_from_the_bound_and_is_stable_on_it():
    x = np.random.default_rng(13).gamma(4.0, 0.05, size=40)
    est = x.mean(keepdims=True)

    def draw(k, g):
        return x[g.integers(0, 40, size=(k, 40))].mean(axis=1)[:, None]

    far = iv.adaptive_bootstrap_gate(estimate=est, draw=draw, bound=0.5, direction="max", seed=1)
    assert far.resamples == 1000 and far.status[0] == iv.PASS
    ref = iv.bootstrap_interval(estimate=est, replicates=draw(200_000, np.random.default_rng(0)), method="percentile")
    on = [iv.adaptive_bootstrap_gate(estimate=est, draw=draw, bound=float(ref.high[0]), direction="max", seed=s,
                                     method="percentile") for s in range(12)]
    assert all(d.resamples == 16000 for d in on)
    statuses = [d.status[0] for d in on]
    assert statuses.count(iv.INSUFFICIENT) >= 10 and iv.FAIL not in statuses


def test_adaptive_bootstrap_checks_its_draw():
    with pytest.raises(ValueError, match="must return an array of shape"):
        iv.adaptive_bootstrap_gate(estimate=[0.1, 0.2], draw=lambda k, g: np.zeros((k, 3)), bound=0.5,
                                   direction="max", seed=0)


# -- calibration (fixed seed, fast) -----------------------------------------------------------------------------

R = 2000
TOL = 3 * np.sqrt(ALPHA * (1 - ALPHA) / R)  # three Monte Carlo standard errors of a 2.5% rate


def _best_binomial_power(n, bound, x):
    """Exact critical counts (UMP non-randomised, least favourable p = bound) applied to the data x."""
    k = np.arange(n.max() + 1)[:, None]
    crit = np.where(stats.binom.cdf(k, n, bound) <= ALPHA, k, -1).max(axis=0)
    return float(np.mean((x <= crit).all(axis=-1)))


@pytest.mark.parametrize("scale", [1, 4])
@pytest.mark.parametrize("family, sizes, bound, inside", [("fpr", NEGATIVES, 0.45, 0.20),
                                                           ("flip_rate", TWINS, 0.20, 0.05)])
def test_calibration_of_per_group_rates(family, sizes, bound, inside, scale):
    rng = np.random.default_rng([21, scale, len(family)])
    n = sizes * scale
    at_bound = rng.binomial(n, bound, size=(R, len(n)))
    d = iv.rate_gate(events=at_bound, trials=np.broadcast_to(n, at_bound.shape), bound=bound, direction="max")
    assert np.mean(d.verdict == iv.FAIL) <= ALPHA + TOL
    x = rng.binomial(n, inside, size=(R, len(n)))
    power = np.mean(iv.rate_gate(events=x, trials=np.broadcast_to(n, x.shape), bound=bound,
                                 direction="max").verdict == iv.PASS)
    best = _best_binomial_power(n, bound, x)
    assert power >= best - 0.10, (power, best)


def _range(x):
    return x.max(axis=-1) - x.min(axis=-1)


def _gap_best_critical(n, bound, rng):
    """2.5% quantile of max - min at gap = bound, minimised over extreme pairs, base rates and the middle groups."""
    g = len(n)
    best = []
    for i in range(g):
        for j in range(g):
            if i == j:
                continue
            for plo in np.linspace(0, 1 - bound, 8):
                for mid in (plo, plo + bound / 2, plo + bound):
                    p = np.full(g, mid)
                    p[i], p[j] = plo, plo + bound
                    t = _range(rng.binomial(n, p, size=(500, g)) / n)
                    best.append((np.quantile(t, ALPHA), p))
    best.sort(key=lambda item: item[0])
    refined = []
    for _, p in best[:5]:
        t = np.sort(_range(rng.binomial(n, p, size=(8000, g)) / n))
        refined.append(t[int(ALPHA * len(t)) - 1])
    return min(refined)


@pytest.mark.parametrize("scale", [1, 4])
def test_calibration_of_the_equalized_odds_gap(scale):
    rng = np.random.default_rng([22, scale])
    neg, pos = NEGATIVES * scale, POSITIVES * scale

    def gate(tpr, fpr):
        tp = rng.binomial(pos, tpr, size=(R, 5))
        fp = rng.binomial(neg, fpr, size=(R, 5))
        d = iv.equalized_odds_gate(tp=tp, positives=np.broadcast_to(pos, tp.shape), fp=fp,
                                   negatives=np.broadcast_to(neg, fp.shape), bound=0.30, intervals=False)
        return d.verdict, np.maximum(_range(tp / pos), _range(fp / neg))

    for tpr, fpr in ((np.full(5, 0.8), np.array([0.15, 0.45, 0.15, 0.45, 0.45])),   # FPR gap exactly 0.30
                     (np.array([0.55, 0.85, 0.85, 0.55, 0.85]), np.full(5, 0.2))):  # TPR gap exactly 0.30
        verdict, _ = gate(tpr, fpr)
        assert np.mean(verdict == iv.FAIL) <= ALPHA + TOL
    c = min(_gap_best_critical(pos, 0.30, rng), _gap_best_critical(neg, 0.30, rng))
    verdict, stat = gate(np.full(5, 0.9), np.full(5, 0.1))                          # no gap at all
    power, best = np.mean(verdict == iv.PASS), np.mean(stat <= c)
    assert power >= best - 0.10, (power, best)


@pytest.mark.parametrize("scale", [1, 4])
def test_calibration_of_bpsn_auc(scale):
    rng = np.random.default_rng([23, scale])
    neg, pos = NEGATIVES * scale, POSITIVES * scale
    owner = np.repeat(np.arange(5), pos)

    def aucs(target):
        ps = rng.normal(size=(R, pos.sum()))
        mu = -np.sqrt(2) * stats.norm.ppf(target)
        out = [iv.delong_auc(positive_scores=ps[:, owner != k], negative_scores=rng.normal(mu, 1, size=(R, neg[k])))
               for k in range(5)]
        return np.stack([o[0] for o in out], -1), np.stack([o[1] for o in out], -1)

    m = np.broadcast_to([int((owner != k).sum()) for k in range(5)], (R, 5))
    n = np.broadcast_to(neg, (R, 5))
    a, v = aucs(0.6)
    crit = np.quantile(a, 1 - ALPHA, axis=0, method="higher")  # best test's critical values, per group
    d = iv.auc_gate(auc=a, variance=v, n_positive=m, n_negative=n, bound=0.6)
    assert np.mean(d.verdict == iv.FAIL) <= ALPHA + TOL
    a, v = aucs(0.8)
    power = np.mean(iv.auc_gate(auc=a, variance=v, n_positive=m, n_negative=n, bound=0.6).verdict == iv.PASS)
    best = np.mean((a > crit).all(axis=-1))
    assert power >= best - 0.10, (power, best)
