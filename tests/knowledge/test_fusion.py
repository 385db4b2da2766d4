"""How hybrid search fuses its vector and full-text rankings (knowledge.search.fuse): the ranking that is sure
of its best hit for this query leads, agreement counts, and the scores stay positive for the feedback factor.
The quality on labelled corpora is measured by benchmarks/retrieval/fusion.py."""

from __future__ import annotations

from agent_lightning.knowledge.search import fuse


def order(scores: dict[int, float]) -> list[int]:
    return sorted(scores, key=lambda key: -scores[key])


FLAT_VECTOR = [(10, 0.52), (11, 0.51), (12, 0.50), (13, 0.50), (14, 0.49), (15, 0.48)]
FLAT_TEXT = [(20, 4.1), (21, 4.0), (22, 4.0), (23, 3.9), (24, 3.9), (25, 3.8)]


def test_a_keyword_hit_that_stands_out_of_the_full_text_ranking_leads():
    text = [(1, 12.0), *FLAT_TEXT]  # the one chunk holding the rare word, far above the rest
    assert order(fuse(FLAT_VECTOR, text))[0] == 1


def test_a_paraphrase_match_that_stands_out_of_the_vector_ranking_leads():
    vector = [(2, 0.83), *FLAT_VECTOR]
    assert order(fuse(vector, FLAT_TEXT))[0] == 2


def test_a_chunk_both_rankings_hold_goes_above_those_only_one_holds():
    vector = [(10, 0.52), (30, 0.51), (11, 0.50), (12, 0.50), (13, 0.49)]
    text = [(20, 4.1), (30, 4.0), (21, 4.0), (22, 3.9), (23, 3.9)]
    assert order(fuse(vector, text))[0] == 30


def test_one_ranking_alone_keeps_its_order_and_every_score_is_positive():
    assert order(fuse(FLAT_VECTOR, [])) == [key for key, _ in FLAT_VECTOR]
    assert order(fuse([], FLAT_TEXT))[:2] == [20, 21]
    assert all(score > 0 for score in fuse(FLAT_VECTOR, FLAT_TEXT).values())
    assert fuse([], []) == {}
