"""NAB evaluation: replay the whole corpus through the daemon's detector, write NAB result
files, and score them with NAB's method, for the shipped model and the last-value baseline.

Both detectors run the identical chain (normaliser, scorer, settings); only the predictor
differs. Results: ``OUT/<category>/<file>.csv`` for the model, ``OUT/last_value/...`` for
the baseline. Scores are reported with NAB's corpus-wide threshold per profile and also at
the daemon's own threshold, which is what users get.
"""
from __future__ import annotations

import time
from pathlib import Path

from anomalyd.daemon.detector import Detector, DetectorSettings
from anomalyd.daemon.evaluation.nab_corpus import CorpusFile, iter_corpus
from anomalyd.daemon.evaluation.nab_results import write_detector_results
from anomalyd.daemon.evaluation.nab_scoring import NAB_PROFILES, NabCorpus, score_all_profiles
from anomalyd.daemon.evaluation.replay import SeriesScores, replay
from anomalyd.daemon.scoring import ScoringSettings
from anomalyd.models.artifact import Artifact
from anomalyd.models.engine import LAST_VALUE

BASELINE = "last_value"


def replay_corpus(files: list[CorpusFile], artifact: Artifact, scoring: ScoringSettings, backend: str,
                  max_gap: float) -> list[SeriesScores]:
    detector = Detector(artifact, DetectorSettings(capacity=len(files), batch_size=64, backend=backend,
                                                   max_gap=max_gap), scoring)
    return replay(detector, [f.relative_path.replace("/", ".") for f in files],
                  [(f.unix_seconds, f.values) for f in files])


def evaluate_nab(nab_dir: Path, out_dir: Path, artifact: Artifact, scoring: ScoringSettings = ScoringSettings(),
                 backend: str = "litert", max_gap: float = 86_400.0) -> tuple[dict, dict[str, dict]]:
    """Returns the report and, per detector, the scores by file (for plots)."""
    files = list(iter_corpus(nab_dir))
    corpus = NabCorpus.from_dir(nab_dir)
    report = {"corpus": str(nab_dir), "files": len(files), "model": artifact.fingerprint,
              "threshold": scoring.threshold, "detectors": {}}
    all_scores = {}
    for name, detector_backend, folder in (("anomalyd", backend, ""), (BASELINE, LAST_VALUE, BASELINE)):
        started = time.perf_counter()
        outputs = replay_corpus(files, artifact, scoring, detector_backend, max_gap)
        seconds = time.perf_counter() - started
        scores = {f.relative_path: out.score for f, out in zip(files, outputs)}
        write_detector_results(out_dir, folder, files, scores, corpus.window_rows)
        own = {profile.name: scoring.threshold for profile in NAB_PROFILES}
        report["detectors"][name] = {
            "results": str(Path(out_dir) / folder),
            "nab": _normalised(score_all_profiles(corpus, scores)),
            "at_daemon_threshold": _normalised(score_all_profiles(corpus, scores, thresholds=own)),
            "detail": score_all_profiles(corpus, scores),
            "rejected_rows": int(sum(out.rejected.sum() for out in outputs)),
            "readings_per_s": round(sum(len(f.values) for f in files) / seconds),
        }
        all_scores[name] = scores
    return report, all_scores


def _normalised(by_profile: dict) -> dict:
    return {profile: round(values["normalised"], 2) for profile, values in by_profile.items()}


def summary(report: dict) -> dict:
    """The short form printed by ``anomalyd evaluate --nab``: three scores per detector."""
    return {name: {"nab": d["nab"], "at_daemon_threshold": d["at_daemon_threshold"]}
            for name, d in report["detectors"].items()}
