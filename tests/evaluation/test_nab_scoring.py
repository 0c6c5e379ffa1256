"""NAB scoring: unit pieces, hand-computed tiny corpora, a literal re-derivation, and the
published Numenta HTM figures on the real corpus."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from anomalyd.daemon.evaluation.nab_scoring import (
    NAB_PROFILES,
    NabCorpus,
    Profile,
    load_profiles,
    normalise,
    null_and_perfect,
    optimize_threshold,
    probation_length,
    scaled_sigmoid,
    score_all_profiles,
    score_corpus,
    sweep_thresholds,
)

STANDARD, LOW_FP, LOW_FN = NAB_PROFILES


def S(x: float) -> float:
    """The scaled sigmoid straight from NAB's definition, for hand computation."""
    return -1.0 if x > 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def minutes(n: int, start: str = "2020-01-01 00:00:00") -> list[str]:
    """n timestamps one minute apart, spelled like NAB's data files."""
    t0 = np.datetime64(start, "s")
    return [str(t).replace("T", " ") for t in t0 + np.arange(n) * np.timedelta64(60, "s")]


def window(stamps: list[str], first: int, last: int) -> tuple[str, str]:
    """Window limits spelled like NAB's label files (with microseconds)."""
    return (stamps[first] + ".000000", stamps[last] + ".000000")


# ---------------------------------------------------------------------------- pieces


def test_scaled_sigmoid_matches_published_anchor_values():
    # The values quoted in NAB's own docstring.
    assert float(scaled_sigmoid(-1.0)) == pytest.approx(0.98661, abs=1e-5)
    assert float(scaled_sigmoid(-0.5)) == pytest.approx(0.84828, abs=1e-5)
    assert float(scaled_sigmoid(0.0)) == 0.0
    assert float(scaled_sigmoid(1.0)) == pytest.approx(-0.98661, abs=1e-5)
    # Exactly at 3 the formula still applies; beyond it NAB clamps to -1.
    assert float(scaled_sigmoid(3.0)) == pytest.approx(2 / (1 + math.exp(15)) - 1, abs=1e-15)
    assert float(scaled_sigmoid(3.0)) != -1.0
    assert float(scaled_sigmoid(3.0001)) == -1.0
    xs = np.linspace(-1, 3, 50)
    assert np.all(np.diff(scaled_sigmoid(xs)) < 0)  # earlier is always worth more


@pytest.mark.parametrize(
    "n, expected",
    [(6, 0), (7, 1), (100, 15), (1000, 150), (4000, 600), (4999, 749), (5000, 750), (22695, 750)],
)
def test_probation_length_is_15_percent_floored_and_capped_at_750(n, expected):
    assert probation_length(n) == expected


def test_profiles_file_matches_builtin_profiles(nab_dir):
    loaded = load_profiles(nab_dir)
    assert {p.name: p for p in NAB_PROFILES} == loaded


# ---------------------------------------------------------------------------- hand-made corpus


def tiny_corpus() -> tuple[NabCorpus, list[str]]:
    """Two 20-row files (probation = 3 rows). File a has one window, rows 10..14."""
    stamps = minutes(20)
    corpus = NabCorpus.from_arrays(
        {"cat/a.csv": stamps, "cat/b.csv": minutes(20, "2021-06-01 12:00:00")},
        {"cat/a.csv": [window(stamps, 10, 14)], "cat/b.csv": []},
    )
    return corpus, stamps


def test_tiny_corpus_score_by_hand():
    corpus, _ = tiny_corpus()
    a = np.zeros(20)
    a[[1, 5, 11, 12, 16]] = 1.0  # 1: probation, 5: FP before any window, 11/12: in window, 16: FP after
    b = np.zeros(20)
    b[[0, 9]] = 1.0  # 0: probation, 9: FP in a file without windows
    result = score_corpus(corpus, {"cat/a.csv": a, "cat/b.csv": b}, STANDARD, threshold=0.5)

    fp = STANDARD.fp_weight
    # Earliest detection in the window is row 11: position -(14 - 11 + 1)/5 = -0.8.
    tp_credit = S(-0.8) / S(-1.0)
    # Row 16 is (16 - 14)/(5 - 1) = 0.5 window-widths past the window's right edge.
    expected_a = -fp + tp_credit + fp * S(0.5)
    expected_b = -fp
    assert result.raw_by_file["cat/a.csv"] == pytest.approx(expected_a, abs=1e-12)
    assert result.raw_by_file["cat/b.csv"] == pytest.approx(expected_b, abs=1e-12)
    assert result.raw == pytest.approx(expected_a + expected_b, abs=1e-12)
    assert (result.null, result.perfect) == (-1.0, 1.0)
    assert result.normalised == pytest.approx(100 * (result.raw + 1) / 2, abs=1e-9)
    assert (result.tp, result.fp, result.windows_detected) == (2, 3, 1)
    # tn + fp + tp + fn covers exactly the scorable rows of both files.
    assert result.tp + result.fp + result.fn + result.tn == 2 * (20 - 3)


def test_missed_window_costs_fn_weight_and_profiles_scale():
    corpus, _ = tiny_corpus()
    a = np.zeros(20)
    a[17] = 1.0  # only a far false positive: (17 - 14)/4 = 0.75 widths past the window
    scores = {"cat/a.csv": a, "cat/b.csv": np.zeros(20)}
    for prof in NAB_PROFILES:
        raw = score_corpus(corpus, scores, prof, 0.5).raw
        assert raw == pytest.approx(-prof.fn_weight + prof.fp_weight * S(0.75), abs=1e-12)


def test_window_partly_or_wholly_in_probation():
    stamps = minutes(40)  # probation = 6 rows
    corpus = NabCorpus.from_arrays(
        {"x/early.csv": stamps, "x/gone.csv": minutes(40)},
        {"x/early.csv": [window(stamps, 2, 11)], "x/gone.csv": [window(minutes(40), 1, 4)]},
    )
    null, perfect = null_and_perfect(corpus, STANDARD)
    # The wholly-probationary window is ignored; the other one can at best be caught at
    # row 6, the first scored row: position -(11 - 6 + 1)/10.
    assert null == -1.0
    assert perfect == pytest.approx(S(-0.6) / S(-1.0), abs=1e-12)
    hit_in_probation = np.zeros(40)
    hit_in_probation[3] = 1.0
    res = score_corpus(corpus, {"x/early.csv": hit_in_probation, "x/gone.csv": np.zeros(40)}, STANDARD, 0.5)
    assert res.raw == -1.0 and res.windows_scored == 1


def test_null_and_perfect_detectors_normalise_to_0_and_100():
    corpus, _ = tiny_corpus()
    null_scores = {"cat/a.csv": np.zeros(20), "cat/b.csv": np.zeros(20)}
    perfect_a = np.zeros(20)
    perfect_a[10] = 1.0
    perfect_scores = {"cat/a.csv": perfect_a, "cat/b.csv": np.zeros(20)}
    for prof in NAB_PROFILES:
        assert score_corpus(corpus, null_scores, prof, 0.5).normalised == pytest.approx(0.0, abs=1e-9)
        assert score_corpus(corpus, perfect_scores, prof, 0.5).normalised == pytest.approx(100.0, abs=1e-9)
        threshold, best = optimize_threshold(corpus, perfect_scores, prof)
        assert threshold == 1.0 and best == pytest.approx(100.0, abs=1e-9)


def test_invalid_inputs_are_rejected():
    stamps = minutes(20)
    with pytest.raises(ValueError, match="not a timestamp"):
        NabCorpus.from_arrays({"c/a.csv": stamps}, {"c/a.csv": [("2030-01-01 00:00:00", stamps[5])]})
    with pytest.raises(ValueError, match="ordered, disjoint"):
        NabCorpus.from_arrays({"c/a.csv": stamps}, {"c/a.csv": [window(stamps, 8, 12), window(stamps, 10, 14)]})
    corpus, _ = tiny_corpus()
    with pytest.raises(ValueError, match="missing"):
        score_corpus(corpus, {"cat/a.csv": np.zeros(20)}, STANDARD, 0.5)
    with pytest.raises(ValueError, match="19 scores"):
        score_corpus(corpus, {"cat/a.csv": np.zeros(19), "cat/b.csv": np.zeros(20)}, STANDARD, 0.5)


# ---------------------------------------------------------------------------- re-derivation


def literal_file_score(n, windows, scores, threshold, prof: Profile, pct=0.15) -> float:
    """NAB's rules applied row by row with plain loops (an independent second derivation)."""
    probation = min(math.floor(pct * n), pct * 5000)
    best, scored, total = {}, set(), 0.0
    for i in range(n):
        if i < probation:
            continue
        inside = [k for k, (s, e) in enumerate(windows) if s <= i <= e]
        if inside:
            scored.add(inside[0])
        if scores[i] < threshold:
            continue
        if inside:
            s, e = windows[inside[0]]
            credit = prof.tp_weight * S(-(e - i + 1) / (e - s + 1)) / S(-1.0)
            best[inside[0]] = max(best.get(inside[0], -math.inf), credit)
        else:
            before = [(s, e) for s, e in windows if e < i]
            if not before:
                total -= prof.fp_weight
            else:
                s, e = before[-1]
                total += prof.fp_weight * S((i - e) / (e - s))
    return total + sum(best.get(k, -prof.fn_weight) for k in scored)


def random_corpus(rng: np.random.Generator):
    stamps, windows, scores, rows = {}, {}, {}, {}
    for f in range(int(rng.integers(2, 6))):
        n = int(rng.integers(8, 80))
        ts = minutes(n, f"2020-0{f + 1}-01 00:00:00")
        wins, cursor = [], int(rng.integers(0, 6))
        while cursor + 2 < n and rng.random() < 0.7:
            first = cursor + int(rng.integers(0, 10))
            last = first + int(rng.integers(1, 12))
            if last >= n:
                break
            wins.append((first, last))
            cursor = last + 1
        rel = f"c{f % 2}/f{f}.csv"
        stamps[rel], rows[rel] = ts, wins
        windows[rel] = [window(ts, a, b) for a, b in wins]
        scores[rel] = np.round(rng.random(n), 1)  # coarse values: many ties, as in real detectors
    return NabCorpus.from_arrays(stamps, windows), rows, scores


@pytest.mark.parametrize("seed", range(12))
def test_vectorised_scoring_and_sweep_agree_with_literal_rules(seed):
    rng = np.random.default_rng(seed)
    corpus, rows, scores = random_corpus(rng)
    for prof in NAB_PROFILES:
        sweep = sweep_thresholds(corpus, scores, prof)
        assert np.all(np.diff(sweep.thresholds) < 0)
        for threshold, raw in zip(sweep.thresholds, sweep.raw):
            direct = score_corpus(corpus, scores, prof, threshold)
            literal = {rel: literal_file_score(len(scores[rel]), rows[rel], scores[rel], threshold, prof)
                       for rel in corpus.files}
            assert direct.raw == pytest.approx(raw, abs=1e-9)
            for rel in corpus.files:
                assert direct.raw_by_file[rel] == pytest.approx(literal[rel], abs=1e-9)
        threshold, best = optimize_threshold(corpus, scores, prof)
        null, perfect = null_and_perfect(corpus, prof)
        assert best == pytest.approx(normalise(float(sweep.raw.max()), null, perfect), abs=1e-9)
        # The chosen threshold is the highest one reaching the maximum.
        assert threshold == sweep.thresholds[np.flatnonzero(sweep.raw == sweep.raw.max())[0]]


# ---------------------------------------------------------------------------- published figures

STORED_THRESHOLDS = {
    "standard": 0.5421876907348634,
    "reward_low_FP_rate": 0.5751955032348636,
    "reward_low_FN_rate": 0.5421876907348634,
}


def test_corpus_windows_all_scored(nab_corpus):
    assert len(nab_corpus.files) == 58
    assert nab_corpus.n_windows == 116
    assert null_and_perfect(nab_corpus, STANDARD) == (-116.0, pytest.approx(116.0, abs=1e-9))


def test_reference_htm_scores_with_stored_thresholds(nab_corpus, reference_scores):
    result = score_all_profiles(nab_corpus, reference_scores, thresholds=STORED_THRESHOLDS)
    published = {
        "standard": (46.634, 70.10),
        "reward_low_FP_rate": (30.431, 63.12),
        "reward_low_FN_rate": (26.634, 74.32),
    }
    for name, (raw, normalised) in published.items():
        assert result[name]["raw"] == pytest.approx(raw, abs=1e-3), name
        assert result[name]["normalised"] == pytest.approx(normalised, abs=0.01), name


def test_reference_htm_scores_with_threshold_search(nab_corpus, reference_scores):
    started = time.perf_counter()
    result = score_all_profiles(nab_corpus, reference_scores)
    elapsed = time.perf_counter() - started
    published = {"standard": 70.10, "reward_low_FP_rate": 63.21, "reward_low_FN_rate": 74.32}
    for name, normalised in published.items():
        assert result[name]["normalised"] == pytest.approx(normalised, abs=0.01), name
    # The point of vectorising: three full-corpus sweeps (~365k rows) well under a few seconds.
    assert elapsed < 5.0
