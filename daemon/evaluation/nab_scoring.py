"""The Numenta Anomaly Benchmark's scoring method, vectorised with NumPy.

This re-implements what NAB's ``nab/sweeper.py`` + ``nab/scorer.py`` + ``nab/optimizer.py`` do
(NAB commit ea702d7), so that numbers reported here are comparable with the published
scoreboard. The rules, per data file:

* The first ``min(floor(0.15 * n), 0.15 * 5000)`` rows are a probation period: they are not
  scored at all (neither as detections nor as misses).
* A row is a detection when ``anomaly_score >= threshold``.
* Inside a window of width ``w`` rows ending at row ``r``, a detection at row ``i`` is worth
  ``tpWeight * S(-(r - i + 1) / w) / S(-1)`` with ``S(x) = 2 * sigmoid(-5x) - 1`` (``S(x) = -1``
  for ``x > 3``). Only the best (= earliest) detection of a window counts; a window with no
  scorable detection costs ``-fnWeight``. A window with no scorable row at all is ignored.
* A detection outside every window costs ``fpWeight * S((i - r_prev) / (w_prev - 1))`` where
  ``r_prev``/``w_prev`` belong to the closest preceding window, or ``-fpWeight`` if there is
  none. So false positives just after a window are cheap and far ones cost the full weight.
* The corpus raw score is the sum over files. One threshold per profile is chosen over the
  whole corpus to maximise it (ties: the highest threshold, as NAB's stable sort does), and
  ``normalised = 100 * (raw - null) / (perfect - null)``: ``null`` never detects (every
  window missed) and ``perfect`` detects exactly the first scorable row of every window.

Everything that does not depend on the scores or the profile (window membership, the
sigmoid weights, probation) is computed once per corpus in :class:`NabCorpus`; a profile then
only rescales those unit weights, and a full threshold sweep is a sort plus cumulative sums.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Iterable, Mapping, Sequence

import numpy as np

from .nab_corpus import CorpusError, iter_corpus, load_profile_weights, load_windows, parse_timestamps

# NAB's settings: probation is 15% of a file, capped at 15% of 5000 rows (= 750).
DEFAULT_PROBATION_PERCENT = 0.15
_PROBATION_CAP_ROWS = 5000
# NAB's sweep starts from a threshold above every score (no detections at all).
_NAB_SENTINEL_THRESHOLD = 1.1


@dataclass(frozen=True)
class Profile:
    """A NAB cost matrix (``profiles.json``); tnWeight is unused by NAB's scorer."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


# The three published profiles, identical to NAB's profiles.json (immutable, so safe to share).
NAB_PROFILES: tuple[Profile, ...] = (
    Profile("standard", 1.0, 0.11, 1.0),
    Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)


def load_profiles(nab_dir: str | os.PathLike[str]) -> dict[str, Profile]:
    """Profiles from ``nab_dir/profiles.json``, keyed by name."""
    return {
        name: Profile(name, w["tpWeight"], w["fpWeight"], w["fnWeight"])
        for name, w in load_profile_weights(nab_dir).items()
    }


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """NAB's ``2 * sigmoid(-5x) - 1``, forced to exactly -1 beyond ``x > 3``.

    -1 (a window's left edge) gives ~0.987, 0 (its right edge) gives 0, positive values (past
    a window) go towards -1. The hard cut at 3 is NAB's, kept because it changes the sums.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):  # exp overflow -> inf -> value -1, which is right
        val = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x > 3.0, -1.0, val)


def probation_length(n_rows: int, probation_percent: float = DEFAULT_PROBATION_PERCENT) -> int:
    """Rows at the start of a file that NAB does not score: ``min(floor(p*n), p*5000)``.

    Rows with index ``>= probation_length`` are scored. With p = 0.15 the cap is 750 rows.
    """
    return int(min(np.floor(probation_percent * n_rows), probation_percent * _PROBATION_CAP_ROWS))


def _window_rows(stamps: np.ndarray, windows: Sequence[tuple], rel: str) -> tuple[tuple[int, int], ...]:
    """Map window limits to (first row, last row); NAB requires both to exist in the file."""
    try:
        limits = parse_timestamps([t for w in windows for t in w]).reshape(-1, 2) if windows else []
    except ValueError as exc:
        raise CorpusError(f"{rel}: window limits must be pairs of timestamps ({exc})") from None
    rows = []
    for start, end in limits:
        hit_s, hit_e = np.flatnonzero(stamps == start), np.flatnonzero(stamps == end)
        if len(hit_s) == 0 or len(hit_e) == 0:
            raise CorpusError(f"{rel}: window [{start}, {end}] limit is not a timestamp of the file")
        # First occurrence, as NAB's list.index(); windows must be ordered and disjoint
        # because NAB enters them in list order and refuses overlapping labels.
        s, e = int(hit_s[0]), int(hit_e[0])
        if e < s or (rows and s <= rows[-1][1]):
            raise CorpusError(f"{rel}: windows must be ordered, disjoint and start <= end")
        rows.append((s, e))
    return tuple(rows)


@dataclass(frozen=True)
class _Layout:
    """Per-row and per-window arrays of the whole corpus, files concatenated in order."""

    file_offsets: np.ndarray  # int64 [F+1]
    file_of_row: np.ndarray  # int64 [N]
    scorable: np.ndarray  # bool [N]: past probation
    window_of_row: np.ndarray  # int64 [N]: global window id, -1 outside
    tp_unit: np.ndarray  # float64 [N]: S(pos)/S(-1) inside windows, 0 outside
    fp_unit: np.ndarray  # float64 [N]: S(dist) or -1 outside windows (<= 0), 0 inside
    window_start: np.ndarray  # int64 [W]: global row of each window's first row
    window_width: np.ndarray  # int64 [W]
    window_file: np.ndarray  # int64 [W]
    window_scored: np.ndarray  # bool [W]: has at least one scorable row
    window_first_scorable: np.ndarray  # int64 [W]: global row (valid where scored)


def _file_unit_weights(n: int, win_rows: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, ...]:
    """Window id, TP unit weight and FP unit weight of every row of one file."""
    idx = np.arange(n)
    window_of_row = np.full(n, -1, dtype=np.int64)
    tp_unit = np.zeros(n)
    max_tp = float(scaled_sigmoid(-1.0))
    for k, (s, e) in enumerate(win_rows):
        width = e - s + 1
        window_of_row[s : e + 1] = k
        # NAB's position is -(r - i + 1)/w: -1 at the left edge, -1/w (not 0) at the right.
        tp_unit[s : e + 1] = scaled_sigmoid(-(e - idx[s : e + 1] + 1) / width) / max_tp
    ends = np.array([e for _, e in win_rows], dtype=np.int64)
    widths = np.array([e - s + 1 for s, e in win_rows], dtype=np.int64)
    prev = np.searchsorted(ends, idx, side="left") - 1  # last window ending before row i
    fp_unit = np.full(n, -1.0)
    after = (prev >= 0) & (window_of_row < 0)
    if after.any():
        p = prev[after]
        denom = (widths[p] - 1).astype(np.float64)
        # A one-row window would divide by zero in NAB; treat every FP after it as "far".
        with np.errstate(divide="ignore"):
            dist = np.where(denom > 0, (idx[after] - ends[p]) / np.where(denom > 0, denom, 1), np.inf)
        fp_unit[after] = scaled_sigmoid(dist)
    fp_unit[window_of_row >= 0] = 0.0
    return window_of_row, tp_unit, fp_unit


def _build_layout(
    sizes: Sequence[int], window_rows: Sequence[tuple[tuple[int, int], ...]], probation_percent: float
) -> _Layout:
    """Concatenate every file's unit weights; give windows corpus-wide ids and row numbers."""
    sizes_a = np.asarray(sizes, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes_a)]).astype(np.int64)
    probation = np.array([probation_length(int(n), probation_percent) for n in sizes_a], dtype=np.int64)
    file_of_row = np.repeat(np.arange(len(sizes_a)), sizes_a)
    local_row = np.arange(int(offsets[-1])) - offsets[file_of_row]

    window_of_row, tp_unit, fp_unit = [np.zeros(0, np.int64)], [np.zeros(0)], [np.zeros(0)]
    starts, widths, window_file = [], [], []
    for f, (n, wins) in enumerate(zip(sizes_a, window_rows)):
        wid, tp, fp = _file_unit_weights(int(n), wins)
        window_of_row.append(np.where(wid >= 0, wid + len(starts), -1))  # ids continue across files
        tp_unit.append(tp)
        fp_unit.append(fp)
        starts += [int(offsets[f]) + s for s, _ in wins]
        widths += [e - s + 1 for s, e in wins]
        window_file += [f] * len(wins)

    window_start = np.array(starts, dtype=np.int64)
    window_width = np.array(widths, dtype=np.int64)
    window_file_a = np.array(window_file, dtype=np.int64)
    # A window can be hit no earlier than its start or the end of its file's probation.
    first_scorable = np.maximum(window_start, offsets[:-1][window_file_a] + probation[window_file_a])
    return _Layout(
        file_offsets=offsets,
        file_of_row=file_of_row,
        scorable=local_row >= probation[file_of_row],
        window_of_row=np.concatenate(window_of_row),
        tp_unit=np.concatenate(tp_unit),
        fp_unit=np.concatenate(fp_unit),
        window_start=window_start,
        window_width=window_width,
        window_file=window_file_a,
        window_scored=first_scorable <= window_start + window_width - 1,
        window_first_scorable=first_scorable,
    )


@dataclass(frozen=True, eq=False)
class NabCorpus:
    """Timestamps and anomaly windows of every file, plus precomputed scoring layout.

    ``files`` fixes the order (sorted relative paths, e.g. ``realKnownCause/nyc_taxi.csv``);
    ``window_rows[f]`` holds each window as (first row, last row) of file ``f``.
    """

    files: tuple[str, ...]
    n_rows: Mapping[str, int]
    window_rows: Mapping[str, tuple[tuple[int, int], ...]]
    probation_percent: float = DEFAULT_PROBATION_PERCENT

    @classmethod
    def from_arrays(
        cls,
        timestamps_by_file: Mapping[str, Iterable],
        windows_by_file: Mapping[str, Sequence[tuple]],
        probation_percent: float = DEFAULT_PROBATION_PERCENT,
    ) -> "NabCorpus":
        """Build from timestamps (strings or datetime64) and window limits per file.

        Files absent from ``windows_by_file`` have no windows (like NAB's artificialNoAnomaly).
        """
        files = tuple(sorted(timestamps_by_file))
        n_rows, win_rows = {}, {}
        for rel in files:
            stamps = parse_timestamps(np.asarray(timestamps_by_file[rel]))
            n_rows[rel] = len(stamps)
            win_rows[rel] = _window_rows(stamps, windows_by_file.get(rel, ()), rel)
        return cls(files, n_rows, win_rows, probation_percent)

    @classmethod
    def from_dir(
        cls, nab_dir: str | os.PathLike[str], probation_percent: float = DEFAULT_PROBATION_PERCENT
    ) -> "NabCorpus":
        """Load ``nab_dir/data`` and ``nab_dir/labels/combined_windows.json``."""
        stamps = {f.relative_path: f.timestamps for f in iter_corpus(nab_dir)}
        windows = load_windows(nab_dir)
        unknown = sorted(set(windows) - set(stamps))
        if unknown:
            raise CorpusError(f"windows for files not in the corpus: {unknown[:3]}")
        return cls.from_arrays(stamps, windows, probation_percent)

    @property
    def n_windows(self) -> int:
        """Number of labelled windows (including any that lie wholly in probation)."""
        return sum(len(w) for w in self.window_rows.values())

    @cached_property
    def layout(self) -> _Layout:
        """All per-row unit weights, computed once and reused by every profile and threshold."""
        return _build_layout(
            [self.n_rows[rel] for rel in self.files],
            [self.window_rows[rel] for rel in self.files],
            self.probation_percent,
        )

    def stack_scores(self, scores_by_file: Mapping[str, Sequence[float]]) -> np.ndarray:
        """Concatenate per-file anomaly scores in corpus order, checking files and lengths.

        Every corpus file must be present: NAB scores are only comparable on the full corpus.
        """
        missing = [rel for rel in self.files if rel not in scores_by_file]
        extra = sorted(set(scores_by_file) - set(self.files))
        if missing or extra:
            raise ValueError(f"scores do not match the corpus: missing {missing[:3]}, extra {extra[:3]}")
        chunks = []
        for rel in self.files:
            s = np.asarray(scores_by_file[rel], dtype=np.float64).ravel()
            if len(s) != self.n_rows[rel]:
                raise ValueError(f"{rel}: {len(s)} scores for {self.n_rows[rel]} data rows")
            chunks.append(s)
        stacked = np.concatenate(chunks) if chunks else np.zeros(0)
        if np.isnan(stacked).any():
            raise ValueError("anomaly scores contain NaN")
        return stacked


@dataclass(frozen=True)
class CorpusScore:
    """Result of scoring a corpus at one threshold under one profile."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    normalised: float
    windows_detected: int
    windows_scored: int
    # NAB's per-row counts among scorable rows (detections inside windows = tp, etc.).
    tp: int
    fp: int
    fn: int
    tn: int
    raw_by_file: dict[str, float]

    def as_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)


def null_and_perfect(corpus: NabCorpus, profile: Profile) -> tuple[float, float]:
    """Raw scores of a detector that never fires and of one that hits each window's first row."""
    lay = corpus.layout
    scored = lay.window_scored
    null = -profile.fn_weight * int(scored.sum())
    perfect = profile.tp_weight * float(lay.tp_unit[lay.window_first_scorable[scored]].sum())
    return null, perfect


def normalise(raw: float, null: float, perfect: float) -> float:
    """NAB's ``100 * (raw - null) / (perfect - null)``; NaN when the corpus has no window."""
    span = perfect - null
    return float(100.0 * (raw - null) / span) if span != 0 else float("nan")


def score_corpus(
    corpus: NabCorpus,
    scores_by_file: Mapping[str, Sequence[float]],
    profile: Profile,
    threshold: float,
) -> CorpusScore:
    """Score every file at ``threshold`` (detection = ``score >= threshold``) and sum."""
    lay = corpus.layout
    scores = corpus.stack_scores(scores_by_file)
    det = lay.scorable & (scores >= threshold)
    inside = lay.window_of_row >= 0
    n_files, n_win = len(corpus.files), len(lay.window_start)

    fp_rows = det & ~inside
    fp_by_file = np.bincount(lay.file_of_row[fp_rows], weights=profile.fp_weight * lay.fp_unit[fp_rows],
                             minlength=n_files)
    best = np.full(n_win, -np.inf)
    hit = np.flatnonzero(det & inside)
    np.maximum.at(best, lay.window_of_row[hit], lay.tp_unit[hit])  # earliest detection = max
    detected = np.isfinite(best)
    credit = profile.tp_weight * np.where(detected, best, 0.0)
    win_score = np.where(lay.window_scored, np.where(detected, credit, -profile.fn_weight), 0.0)
    win_by_file = np.bincount(lay.window_file, weights=win_score, minlength=n_files)
    by_file = fp_by_file + win_by_file

    raw = float(by_file.sum())
    null, perfect = null_and_perfect(corpus, profile)
    scorable_inside = lay.scorable & inside
    return CorpusScore(
        profile=profile.name,
        threshold=float(threshold),
        raw=raw,
        null=null,
        perfect=perfect,
        normalised=normalise(raw, null, perfect),
        windows_detected=int((detected & lay.window_scored).sum()),
        windows_scored=int(lay.window_scored.sum()),
        tp=int((det & inside).sum()),
        fp=int(fp_rows.sum()),
        fn=int((scorable_inside & ~det).sum()),
        tn=int((lay.scorable & ~inside & ~det).sum()),
        raw_by_file={rel: float(v) for rel, v in zip(corpus.files, by_file)},
    )


@dataclass(frozen=True)
class ThresholdSweep:
    """Corpus raw score for every distinct threshold, highest threshold first.

    ``raw[k]`` is the score when rows with ``score >= thresholds[k]`` are detections;
    ``thresholds[0]`` lies above every score (nothing detected, raw = null).
    """

    thresholds: np.ndarray
    raw: np.ndarray


def _sentinel_threshold(scores: np.ndarray) -> float:
    """NAB's 1.1, or just above the top score for detectors whose scores exceed it."""
    top = float(scores.max()) if scores.size else 0.0
    return _NAB_SENTINEL_THRESHOLD if top < _NAB_SENTINEL_THRESHOLD else float(np.nextafter(top, np.inf))


def sweep_thresholds(
    corpus: NabCorpus, scores_by_file: Mapping[str, Sequence[float]], profile: Profile
) -> ThresholdSweep:
    """Raw corpus score at every distinct anomaly score used as threshold, in one pass.

    As in NAB's sweeper, rows are visited from the highest score down; each row adds its FP
    cost, or raises its window's credit if it is now the window's earliest detection. Here the
    per-window "earliest so far" is a grouped running minimum of row positions (encoded so a
    single ``maximum.accumulate`` does it), and the score after each row is a cumulative sum.
    """
    lay = corpus.layout
    scores = corpus.stack_scores(scores_by_file)
    null, _ = null_and_perfect(corpus, profile)
    rows = np.flatnonzero(lay.scorable)
    order = np.argsort(-scores[rows], kind="stable")
    rows, s_sorted = rows[order], scores[rows][order]

    step = profile.fp_weight * lay.fp_unit[rows]  # 0 for rows inside windows
    win = lay.window_of_row[rows]
    pos = np.flatnonzero(win >= 0)
    if pos.size:
        g = win[pos]
        by_window = np.lexsort((pos, g))  # group by window, sweep order within a window
        pos, g = pos[by_window], g[by_window]
        local = rows[pos] - lay.window_start[g]
        big = int(lay.window_width.max()) + 1
        # Within window g the code lies in [g*big, (g+1)*big), so the running max restarts
        # at each new window; a larger code means an earlier row.
        code = np.maximum.accumulate(g * big + (big - 1 - local))
        earliest = big - 1 - (code - g * big)
        credit = profile.tp_weight * lay.tp_unit[lay.window_start[g] + earliest]
        first = np.r_[True, g[1:] != g[:-1]]
        before = np.where(first, -profile.fn_weight, np.r_[0.0, credit[:-1]])
        step[pos] += credit - before
    after_row = null + np.cumsum(step)
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True] if s_sorted.size else np.zeros(0, bool)
    return ThresholdSweep(
        thresholds=np.r_[_sentinel_threshold(scores), s_sorted[last_of_tie]],
        raw=np.r_[null, after_row[last_of_tie]],
    )


def optimize_threshold(
    corpus: NabCorpus, scores_by_file: Mapping[str, Sequence[float]], profile: Profile
) -> tuple[float, float]:
    """The corpus-wide threshold maximising the raw score, and its normalised score.

    Ties go to the highest threshold (NAB keeps the first of its descending sweep).
    """
    sweep = sweep_thresholds(corpus, scores_by_file, profile)
    best = int(np.argmax(sweep.raw))
    null, perfect = null_and_perfect(corpus, profile)
    return float(sweep.thresholds[best]), normalise(float(sweep.raw[best]), null, perfect)


def score_all_profiles(
    corpus: NabCorpus,
    scores_by_file: Mapping[str, Sequence[float]],
    profiles: Iterable[Profile] = NAB_PROFILES,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, dict]:
    """Per profile: threshold, raw, null, perfect and normalised score (JSON-serialisable).

    With ``thresholds`` (profile name -> threshold) those are used as given, e.g. to
    reproduce a published run; without, each profile's threshold is optimised on the corpus.
    """
    out = {}
    for profile in profiles:
        if thresholds is not None:
            threshold = thresholds[profile.name]
        else:
            threshold, _ = optimize_threshold(corpus, scores_by_file, profile)
        result = score_corpus(corpus, scores_by_file, profile, threshold)
        out[profile.name] = {
            "threshold": result.threshold,
            "raw": result.raw,
            "null": result.null,
            "perfect": result.perfect,
            "normalised": result.normalised,
            "windows_detected": result.windows_detected,
            "windows_scored": result.windows_scored,
        }
    return out
