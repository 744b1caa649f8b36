"""HPV status metrics (HECKTOR Task 3). Positive class = HPV positive (label 1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BinaryMetrics:
    """Hard-label metrics plus AUC of the scores (NaN where undefined)."""

    balanced_accuracy: float
    sensitivity: float
    specificity: float
    auc: float
    n_positive: int
    n_negative: int


def _safe_ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def roc_auc(y_true, score) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``; exact ties count 0.5); NaN with one class only."""
    y = np.asarray(y_true).astype(bool).ravel()
    if y.all() or not y.any():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, np.asarray(score, dtype=float).ravel()))


def roc_points(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) of every distinct threshold, from (0, 0) to (1, 1).

    scikit-learn's ``roc_curve`` with all thresholds kept (``drop_intermediate=False``); a patient
    is called positive when ``score >= threshold``.
    """
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.asarray(y_true).astype(bool).ravel(), np.asarray(score, dtype=float).ravel(),
                            drop_intermediate=False)
    return fpr, tpr


def binary_metrics(y_true, y_pred, score=None) -> BinaryMetrics:
    """Balanced accuracy, sensitivity, specificity (on hard labels) and AUC (on ``score``).

    Parameters
    ----------
    y_true, y_pred : array-like of {0, 1}
        True and predicted HPV status, 1 = positive.
    score : array-like of float, optional
        Probability of HPV positive, for the AUC.
    """
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(y_pred).astype(int).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y.size} vs {p.size}")
    tp = int(np.sum((y == 1) & (p == 1)))
    tn = int(np.sum((y == 0) & (p == 0)))
    n_pos, n_neg = int(np.sum(y == 1)), int(np.sum(y == 0))
    sens, spec = _safe_ratio(tp, n_pos), _safe_ratio(tn, n_neg)
    auc = roc_auc(y, score) if score is not None else float("nan")
    return BinaryMetrics(float(np.nanmean([sens, spec])) if n_pos + n_neg else float("nan"),
                         sens, spec, auc, n_pos, n_neg)


def balanced_accuracy(y_true, y_pred) -> float:
    """``(sensitivity + specificity) / 2`` on hard labels, HPV positive = positive class.

    With one class only present, this is the recall of that class (as scikit-learn's
    ``balanced_accuracy_score``).
    """
    return binary_metrics(y_true, y_pred).balanced_accuracy


def best_balanced_accuracy_threshold(y_true, probability) -> float:
    """Threshold on ``probability`` maximising balanced accuracy (predict positive if ``p >= t``).

    The threshold is placed midway between consecutive distinct scores so it generalises
    to unseen probabilities; ties between thresholds go to the one closest to 0.5.
    """
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(probability, dtype=float).ravel()
    if y.min(initial=1) == y.max(initial=0):
        return 0.5
    uniq = np.unique(s)
    candidates = np.concatenate(([uniq[0] - 1e-6], (uniq[:-1] + uniq[1:]) / 2, [uniq[-1] + 1e-6]))
    scores = np.array([balanced_accuracy(y, (s >= t).astype(int)) for t in candidates])
    best = np.flatnonzero(np.isclose(scores, scores.max()))
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])
