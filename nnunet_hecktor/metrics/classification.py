"""HPV status metrics (HECKTOR Task 3) and the one HPV decision-threshold policy.

Positive class = HPV positive (label 1).

**Threshold policy** (:func:`choose_threshold`, default :data:`DEFAULT_THRESHOLD_RULE` =
``"prevalence"``; docs/explanations/threshold-policy.md): predict positive when the probability is at
least the prevalence of positives that the probabilities are calibrated to. For calibrated
probabilities this is the Bayes rule for balanced accuracy (the class-conditional likelihood ratio
exceeds 1), so no search over noisy scores is needed: with about one HPV-negative patient in ten a
searched threshold rests on a handful of patients. The prognosis stage's logistic regression is
calibrated to the training prevalence; the network's HPV head, trained with class weights, to the
weighted prevalence (0.5 for balanced weights, see ``HPVLoss.calibrated_prevalence``). ``"search"``
(maximise balanced accuracy on out-of-fold probabilities) stays available.
"""

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


#: Decision-threshold rules: ``prevalence`` = the prevalence the probabilities are calibrated to (Bayes
#: rule for balanced accuracy); ``search`` = the maximiser of balanced accuracy on out-of-fold probabilities.
THRESHOLD_RULES: tuple[str, ...] = ("prevalence", "search")
#: The package's policy (benchmarks/bench_hpv_threshold.py; docs/explanations/threshold-policy.md).
DEFAULT_THRESHOLD_RULE: str = "prevalence"


def choose_threshold(y_train, rule: str = DEFAULT_THRESHOLD_RULE, out_of_fold_probability=None,
                     calibrated_prevalence: float | None = None) -> float:
    """Decision threshold (predict HPV positive if ``p >= threshold``) from training rows.

    Parameters
    ----------
    y_train : array of 0/1
        Training labels (1 = HPV positive).
    rule : {"prevalence", "search"}
        ``prevalence`` (the policy): ``calibrated_prevalence`` when given, else the training share of
        positives. ``search``: the threshold maximising balanced accuracy on ``out_of_fold_probability``.
    out_of_fold_probability : array, optional
        Needed for ``search``.
    calibrated_prevalence : float, optional
        The prevalence the probabilities are calibrated to when it is not the training share of
        positives (a model trained with class weights).

    Returns
    -------
    float
        0.5 when the training rows hold one class only.
    """
    y = np.asarray(y_train).astype(int)
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule must be one of {', '.join(THRESHOLD_RULES)}, not {rule!r}")
    if y.min(initial=1) == y.max(initial=0):
        return 0.5
    if rule == "prevalence":
        return float(y.mean() if calibrated_prevalence is None else calibrated_prevalence)
    if out_of_fold_probability is None:
        raise ValueError("the 'search' threshold rule needs out-of-fold probabilities")
    return best_balanced_accuracy_threshold(y, out_of_fold_probability)


def multiclass_balanced_accuracy(y_true, y_pred) -> float:
    """Multi-class balanced accuracy (scikit-learn's ``balanced_accuracy_score``): mean recall over the
    classes present in ``y_true``; NaN when ``y_true`` holds fewer than two classes (undefined there:
    a constant classifier would score 1.0).

    Used for T and N stage (ordinal codes of ``schema.stage_code``) and, with two classes, HPV status.
    """
    y = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y.size} vs {p.size}")
    if np.unique(y).size < 2:
        return float("nan")
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        # A predicted class nobody has is expected (it only lowers the recall of the true classes).
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(y, p))


def confusion_matrix(y_true, y_pred, labels) -> np.ndarray:
    """Counts ``[i, j]`` = patients of true class ``labels[i]`` predicted as ``labels[j]`` (scikit-learn)."""
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    return sk_confusion_matrix(np.asarray(y_true).ravel(), np.asarray(y_pred).ravel(), labels=list(labels))
