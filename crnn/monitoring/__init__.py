"""Drift monitoring: does what a scoring job scored still look like what the model was trained on?

A training run stores a reference :class:`Profile` beside its checkpoint (typed, versioned JSON:
:data:`PROFILE_FILE`): per-sample statistics of the held-out inputs (by modality:
:data:`INPUT_FEATURES`), of the model's outputs (by task kind: ``Task.output_features``) and its
penultimate-layer embeddings reduced by a PCA fit there. A scoring job computes the same columns
for every row it scores (part by part, where the part is scored: here or on a cluster worker) and
:func:`compare` tests them against the reference: a two-sample test per feature, one multivariate
test on the embeddings, with a family-wise false-alarm rate and effect floors from the
``monitoring:`` section. Needs numpy, scipy and scikit-learn only.
"""

from crnn.monitoring.drift import (
    NO_REFERENCE,
    Drift,
    FeatureTest,
    compare,
    drift_line,
    drift_metrics,
    no_reference,
)
from crnn.monitoring.features import INPUT_FEATURES, input_features
from crnn.monitoring.profile import (
    EMBEDDING_PREFIX,
    PROFILE_FILE,
    PROFILE_VERSION,
    Embedding,
    Profile,
    fit_profile,
    load_profile,
)

__all__ = [
    "EMBEDDING_PREFIX",
    "INPUT_FEATURES",
    "NO_REFERENCE",
    "PROFILE_FILE",
    "PROFILE_VERSION",
    "Drift",
    "Embedding",
    "FeatureTest",
    "Profile",
    "compare",
    "drift_line",
    "drift_metrics",
    "fit_profile",
    "input_features",
    "load_profile",
    "no_reference",
]
