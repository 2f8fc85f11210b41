"""Matrix files, log-odds learning and Karlin-Altschul lambda."""

from __future__ import annotations

import numpy as np
import pytest

from ismtk.errors import InputError
from ismtk.search.matrix import (
    EvdParams,
    SubstitutionMatrix,
    count_pairs,
    load_matrix,
    log_odds,
    matrix_correlation,
    read_matrix,
    ungapped_lambda,
    write_matrix,
)
from ismtk.tokenizers import MAX_TOKENS, Alphabet

FOLDSEEK_STYLE = """# 3Di bit/2
# Background (precomputed optional): 0.5 0.3 0.2 0.00001
# Lambda     (precomputed optional): 0.35
    A   C   D   X
A   6  -3   1   0
C  -3   6  -2   0
D   1  -2   4   0
X   0   0   0   0
"""


def test_reads_foldseek_layout_and_round_trips(tmp_path):
    path = tmp_path / "m.out"
    path.write_text(FOLDSEEK_STYLE)
    m = read_matrix(path)
    assert m.symbols == "ACDX" and m.lam == pytest.approx(0.35) and m.title == "3Di bit/2"
    assert m.scores[0, 1] == -3 and m.background[2] == pytest.approx(0.2)
    m = m.with_evd(EvdParams(10, 1, 0.2, 0.01)).with_evd(EvdParams(11, 1, 0.25, 0.02))
    write_matrix(tmp_path / "again.out", m)
    again = read_matrix(tmp_path / "again.out")
    assert np.array_equal(again.scores, m.scores) and again.evd == m.evd
    assert np.allclose(again.background, m.background) and again.evd_for(11, 1).k == pytest.approx(0.02)


def test_a_64_token_matrix_round_trips_although_one_symbol_is_the_comment_sign(tmp_path):
    symbols = Alphabet.of_size(MAX_TOKENS).symbols
    assert "#" in symbols
    scores = np.random.default_rng(0).integers(-9, 9, (MAX_TOKENS, MAX_TOKENS)).astype(np.int32)
    background = np.full(MAX_TOKENS, 1 / MAX_TOKENS)
    m = SubstitutionMatrix(symbols, scores, "K=64", background, 0.3, (EvdParams(10, 1, 0.2, 0.01),))
    write_matrix(tmp_path / "k64.out", m)
    again = read_matrix(tmp_path / "k64.out")
    assert again.symbols == symbols and np.array_equal(again.scores, scores) and again.evd == m.evd
    first = SubstitutionMatrix("#ABC", scores[:4, :4], "the comment sign first")  # its header row read as a comment
    write_matrix(tmp_path / "first.out", first)
    again = read_matrix(tmp_path / "first.out")
    assert again.symbols == "#ABC" and np.array_equal(again.scores, scores[:4, :4])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "    A   C\nA 1 2\n",
        "    A   C\nA 1 x\nC 1 1\n",
        "# Background (precomputed optional): 0.5\n  A\nA 1\nB 2\n",
        "    A   C\nA 1 2\nC 2 1\nA 5 5\n",  # a second row for A: the later one was kept in silence
        "    A   C\nA 1 inf\nC 2 1\n",  # tracebacks, both
        "    A   C\nA 1 99999999999999999999\nC 2 1\n",
    ],
)
def test_bad_matrix_files_raise_input_errors(tmp_path, text):
    path = tmp_path / "bad.out"
    path.write_text(text)
    with pytest.raises(InputError):
        read_matrix(path)


def test_missing_matrix_and_foreign_alphabet_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="neither a file nor a shipped matrix"):
        load_matrix(tmp_path / "nope.out", "3di")
    with pytest.raises(InputError, match="no matrix for tokenizer"):
        load_matrix(None, str(tmp_path))  # an ISM tokenizer folder without its matrix.out
    write_matrix(tmp_path / "matrix.out", load_matrix("3di", "3di"))
    assert load_matrix(None, str(tmp_path)).symbols == load_matrix("3di", "3di").symbols
    with pytest.raises(InputError, match="another tokenizer"):
        load_matrix("blosum62", "aa").index("0123")


def test_log_odds_recovers_the_generating_distribution():
    """Pairs drawn from a known joint distribution give round(2 log2(p_ab / p_a p_b)) of that distribution."""
    rng = np.random.default_rng(7)
    k = 4
    joint = rng.random((k, k)) + np.eye(k) * 2
    joint = (joint + joint.T) / 2
    joint /= joint.sum()
    draws = rng.choice(k * k, size=400_000, p=joint.ravel())
    first, second = np.divmod(draws, k)
    m = log_odds(count_pairs(first, second, k), "ABCD")
    marginal = joint.sum(axis=1)
    expected = 2 * np.log2(joint / np.outer(marginal, marginal))
    assert np.abs(m.scores - expected).max() <= 0.5 + 0.05
    assert np.array_equal(m.scores, m.scores.T)
    assert np.allclose(m.background, marginal, atol=0.005)


def test_unseen_pairs_need_pseudocounts():
    counts = count_pairs(np.array([0, 1]), np.array([0, 1]), 3)
    with pytest.raises(InputError, match="never occur"):
        log_odds(counts, "ABC")
    m = log_odds(counts, "ABC", pseudocount=1.0)
    assert m.scores[0, 0] > m.scores[0, 1]


def test_ungapped_lambda_solves_the_karlin_altschul_equation():
    scores = np.array([[3, -4], [-4, 2]])
    background = np.array([0.4, 0.6])
    lam = ungapped_lambda(scores, background)
    assert (np.outer(background, background) * np.exp(lam * scores)).sum() == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(InputError):
        ungapped_lambda(np.ones((2, 2), int), background)


def test_correlation_uses_shared_symbols_only():
    a = SubstitutionMatrix("ABC", np.array([[5, -1, -2], [-1, 4, 0], [-2, 0, 6]], np.int32))
    b = SubstitutionMatrix("CBAX", np.array([[12, 0, -4, 0], [0, 8, -2, 0], [-4, -2, 10, 0], [0, 0, 0, 0]], np.int32))
    r, n = matrix_correlation(a, b)
    assert n == 6 and r == pytest.approx(1.0)
