"""Which law a question is about, learned from the curated questions.

Callers name situations, not laws: 过节发给员工的米面油 is a question for the individual income
tax, 欠税会不会查封住房 one for the collection law. A linear classifier over the question's
hashed character 1–3-grams (those of ``qa_engine.scope``), trained at build time on the
articles' curated questions labelled with their law, gives each law a probability; retrieval
adds it, weighted, to the scores of that law's articles. Versions of one law are one class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .scope import gram_matrix


class LawModel:
    """Weights of the grams the training questions hold (any other gram weighs 0), a row per
    gram, a column per law."""

    def __init__(self, laws: list[str], grams: np.ndarray, weights: np.ndarray, intercepts: np.ndarray):
        self.laws = laws
        self.grams = grams  # sorted bucket numbers
        self.weights = weights
        self.intercepts = intercepts

    @classmethod
    def train(cls, questions: list[str], laws: list[str]) -> "LawModel | None":
        """A model from questions and the law each belongs to (None: fewer than two laws)."""
        if len(set(laws)) < 2:
            return None
        from sklearn.linear_model import SGDClassifier

        rows = gram_matrix(questions)
        model = SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=50, tol=None, random_state=0).fit(rows, laws)
        grams = np.unique(rows.indices)  # L2 decay keeps every other gram's weight at 0
        return cls(list(model.classes_), grams.astype(np.int64), np.ascontiguousarray(model.coef_[:, grams].T, dtype=np.float32),
                   model.intercept_.astype(np.float32))

    def probabilities(self, question_grams: np.ndarray) -> np.ndarray:
        """The probability of each law (in ``laws`` order) for a question's grams (``scope.gram_buckets``)."""
        places = np.searchsorted(self.grams, question_grams)
        known = places < len(self.grams)
        known[known] = self.grams[places[known]] == question_grams[known]
        logits = self.weights[places[known]].sum(axis=0) / np.sqrt(max(len(question_grams), 1)) + self.intercepts
        likelihoods = 1 / (1 + np.exp(-logits))  # one law against the rest, each
        if len(self.laws) == 2:  # a binary model has one column: the second law against the first
            likelihoods = np.array([1 - likelihoods[0], likelihoods[0]])
        return likelihoods / likelihoods.sum()

    def likeliest(self, probabilities: np.ndarray, count: int = 3) -> list[tuple[str, float]]:
        """The ``count`` likeliest laws of ``probabilities`` (from ``probabilities``), likeliest first."""
        return [(self.laws[n], float(probabilities[n])) for n in np.argsort(-probabilities)[:count]]

    def save(self, path: Path) -> None:
        np.savez(path, laws=np.array(self.laws), grams=self.grams, weights=self.weights, intercepts=self.intercepts)

    @classmethod
    def load(cls, path: Path) -> "LawModel":
        with open(path, "rb") as file, np.load(file) as saved:  # the file is closed even when it is damaged
            return cls([str(law) for law in saved["laws"]], saved["grams"], saved["weights"], saved["intercepts"])
