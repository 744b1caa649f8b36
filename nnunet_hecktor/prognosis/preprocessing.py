"""Column roles and the preprocessing pipeline fitted inside each training fold.

Imputation, scaling and encoding are estimated from training rows only: the preprocessor is
the first step of every model :class:`~sklearn.pipeline.Pipeline`, so cross-validation clones
and refits it per fold (no validation row ever informs a median, a mean or a category).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nnunet_hecktor.prognosis.feature_catalogue import is_log_scale

#: Placeholder category for a missing categorical value (stateless, so it can be set before CV).
MISSING_CATEGORY = "missing"


@dataclass
class ColumnRoles:
    """Which raw input columns are treated how.

    ``log_continuous``: non-negative heavy-tailed values (volumes, areas, TLG), log1p then like
    ``continuous``; ``continuous``: median-imputed and standardised; ``binary`` and ``ordinal``:
    most-frequent / median imputed with a missing-value indicator, standardised;
    ``categorical``: one-hot encoded, missing as its own category, unseen categories ignored.
    """

    log_continuous: list[str] = field(default_factory=list)
    continuous: list[str] = field(default_factory=list)
    binary: list[str] = field(default_factory=list)
    ordinal: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)

    @property
    def all_columns(self) -> list[str]:
        return self.log_continuous + self.continuous + self.binary + self.ordinal + self.categorical

    def to_json(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.__dict__.items()}

    @classmethod
    def for_image_columns(cls, columns, **clinical) -> "ColumnRoles":
        """Roles for feature-table columns (log scale where the catalogue says so) plus clinical roles."""
        roles = cls(**clinical)
        for column in columns:
            (roles.log_continuous if is_log_scale(column) else roles.continuous).append(column)
        return roles


def _log1p_nonnegative(X):
    return np.log1p(np.clip(np.asarray(X, dtype=float), 0.0, None))


def make_preprocessor(roles: ColumnRoles):
    """A :class:`~sklearn.compose.ColumnTransformer` turning the raw columns into a dense numeric
    DataFrame (pandas output, so downstream models keep feature names)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    transformers = []
    if roles.log_continuous:
        transformers.append(("log_continuous", Pipeline([
            ("log1p", FunctionTransformer(_log1p_nonnegative, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
        ]), list(roles.log_continuous)))
    if roles.continuous:
        transformers.append(("continuous", Pipeline([
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
        ]), list(roles.continuous)))
    if roles.binary:
        transformers.append(("binary", Pipeline([
            ("impute", SimpleImputer(strategy="most_frequent", add_indicator=True)),
            ("scale", StandardScaler()),
        ]), list(roles.binary)))
    if roles.ordinal:
        transformers.append(("ordinal", Pipeline([
            ("impute", SimpleImputer(strategy="median", add_indicator=True)),
            ("scale", StandardScaler()),
        ]), list(roles.ordinal)))
    if roles.categorical:
        transformers.append(("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                             list(roles.categorical)))
    if not transformers:
        raise ValueError("no input columns: choose image features, clinical variables or both")
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True).set_output(
        transform="pandas")
