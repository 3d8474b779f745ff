"""The plain jieba + bm25s baseline every benchmark compares against (no dictionary, no synonyms)."""

from __future__ import annotations

import logging

from .index import Passage


class PlainBM25Baseline:
    """jieba's default tokeniser and bm25s over the same passages as the engine."""

    def __init__(self, passages: list[Passage], texts: list[str]):
        import bm25s
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._jieba = jieba
        self.passages = passages
        self.retriever = bm25s.BM25()
        self.retriever.index([self._tokens(t) for t in texts], show_progress=False)

    def _tokens(self, text: str) -> list[str]:
        return [t for t in self._jieba.lcut(text) if t.strip()]

    def ask(self, question: str, as_of: str, top_k: int = 10) -> dict:
        tokens = self._tokens(question) or ["的"]
        results, scores = self.retriever.retrieve([tokens], k=min(top_k, len(self.passages)), show_progress=False)
        answers = []
        for rank, (i, score) in enumerate(zip(results[0], scores[0]), start=1):
            p = self.passages[int(i)]
            answers.append(
                {
                    "rank": rank,
                    "score": float(score),
                    "citations": [{"doc": p.doc, "article": p.article, "status": p.status(as_of)}],
                }
            )
        return {"route": "answer", "answers": answers}
