"""Multi-track databases (createdb --tracks) and weighted scores over tracks (search --score)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from ismtk.cli import app
from ismtk.cli.console import EXIT_ERROR
from ismtk.errors import InputError
from ismtk.search.combined import parse_score
from ismtk.search.db import SequenceDB
from ismtk.search.evalue import fit_evd, shipped_evd
from ismtk.search.matrix import load_matrix
from ismtk.search.prefilter import PrefilterSettings
from ismtk.search.prob import find_fit
from ismtk.search.search import Searcher, SearchOptions, score_tracks, with_aa_weight
from ismtk.search.tracks import ScoreTracks
from ismtk.sequence import AA_ALPHABET, aa_indices
from ismtk.tokenizers import load_tokenizer
from ismtk.workflows.search import load_search_db, with_score

runner = CliRunner()
EVERYTHING = ("-e", "1e9", "-t", "1")


def _run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


#: SCOP classes of the five test domains: two families of two domains each, and a fold of its own.
LABELS = {"d1ycca_": "a.3.1.1", "d451ca_": "a.3.1.1", "d1nu4a_": "d.58.7.1", "d2hzca_": "d.58.7.1",
          "d1c4qa_": "b.40.2.1"}


def _label_files(folder, db: SequenceDB) -> tuple[str, str]:
    """A lookup.tsv of :data:`LABELS` and a names.txt of ``db``'s entries in ``folder``, for benchmark scripts."""
    (folder / "lookup.tsv").write_text("".join(f"{n}\t{s}\n" for n, s in LABELS.items()))
    (folder / "names.txt").write_text("".join(f"{n}\n" for n in db.names))
    return str(folder / "lookup.tsv"), str(folder / "names.txt")


@pytest.fixture(scope="module")
def tracks_db(domains_dir, tmp_path_factory):
    """The five test domains with 3Di (main), ISM and amino-acid tracks."""
    path = tmp_path_factory.mktemp("tracks") / "db"
    _run("createdb", domains_dir, path, "--tracks", "3di,ism", "-t", "1")
    return path


@pytest.fixture(scope="module")
def ism_identity():
    return load_tokenizer("ism").identity


def test_createdb_stores_each_track_under_its_tokenizer_identity(tracks_db, domains_dir, tmp_path, ism_identity):
    header = json.loads((tracks_db / "ismtk-db.json").read_text())
    assert header["tokenizer"] == "3di"
    assert [t["tokenizer"] for t in header["tracks"]] == [ism_identity]
    db = SequenceDB.load(tracks_db)
    assert db.track_names == ["3di", ism_identity, "aa"]
    # each track holds the tokens the single-track databases of the same structures hold
    _run("createdb", domains_dir, tmp_path / "ism", "--tokenizer", "ism", "-t", "1")
    _run("createdb", domains_dir, tmp_path / "3di", "-t", "1")
    alone = {name: SequenceDB.load(tmp_path / name) for name in ("ism", "3di")}
    assert alone["ism"].names == db.names == alone["3di"].names
    np.testing.assert_array_equal(db.track(ism_identity).tokens, alone["ism"].tokens)
    np.testing.assert_array_equal(db.tokens, alone["3di"].tokens)
    # a database as the input: a copy when it holds the tracks asked for, else it names the ones it lacks
    _run("createdb", tracks_db, tmp_path / "copy", "--tracks", f"3di,{ism_identity}")
    lacking = runner.invoke(app, ["createdb", str(tmp_path / "3di"), str(tmp_path / "more"), "--tracks", "3di,ism"])
    assert lacking.exit_code == EXIT_ERROR
    assert f"the inputs lack {ism_identity} ({tmp_path / '3di'} holds 3di, aa)" in lacking.output, lacking.output
    # a subset keeps every track aligned with its residues
    part = db.select([3, 1])
    np.testing.assert_array_equal(part.track(ism_identity).tokens, alone["ism"].select([3, 1]).tokens)


def test_score_text():
    assert parse_score("3di:1,ism:0.3,aa:0.5") == (("3di", 1.0), ("ism", 0.3), ("aa", 0.5))
    assert parse_score("3di, aa:.5") == (("3di", 1.0), ("aa", 0.5))
    assert parse_score("ism:012345abcdef") == (("ism:012345abcdef", 1.0),)
    assert parse_score("ism:012345abcdef:2") == (("ism:012345abcdef", 2.0),)
    for bad in ("", "3di:0", "3di:x", "aa:-1", ":1", "aa:inf", "3di,3di:2"):
        with pytest.raises(InputError, match="--score"):
            parse_score(bad)


def test_old_options_are_scores():
    assert score_tracks(SearchOptions()) == (("tokens", 1.0),)
    assert score_tracks(SearchOptions(aa_weight=0.5)) == (("tokens", 1.0), ("aa", 0.5))
    assert score_tracks(SearchOptions(score=(("3di", 1.0), ("aa", 0.5))), "3di") == (("tokens", 1.0), ("aa", 0.5))
    with pytest.raises(InputError, match="not both"):
        score_tracks(SearchOptions(aa_weight=0.5, score=(("3di", 1.0),)))


def test_score_3di_aa_writes_what_aa_weight_writes(tracks_db, tmp_path):
    # a weight without shipped E-value parameters: both fit them on the target
    _run("search", tracks_db, tracks_db, "-o", tmp_path / "old.m8", "--aa-weight", "0.7", *EVERYTHING)
    new = _run("search", tracks_db, tracks_db, "-o", tmp_path / "new.m8", "--score", "3di:1,aa:0.7", *EVERYTHING)
    assert "E-values of --score 3di:1,aa:0.7" in new.output
    assert (tmp_path / "new.m8").read_text() == (tmp_path / "old.m8").read_text()
    _run("search", tracks_db, tracks_db, "-o", tmp_path / "mode.m8", "--mode", "aa", *EVERYTHING)
    _run("search", tracks_db, tracks_db, "-o", tmp_path / "aa.m8", "--score", "aa", *EVERYTHING)
    assert (tmp_path / "aa.m8").read_text() == (tmp_path / "mode.m8").read_text()


def _searcher(db: SequenceDB, text: str) -> Searcher:
    options, matrices = with_score(SearchOptions(max_evalue=1e9, trace=True), text, db)
    return Searcher(db, load_matrix(None, "3di"), options, matrices=matrices)


def test_three_tracks_score_the_weighted_sum_of_each_column(tracks_db, ism_identity):
    db = SequenceDB.load(tracks_db)
    searcher = _searcher(db, "3di:1,ism:0.3,aa:0.5")
    assert searcher.score == (("tokens", 1.0), (ism_identity, 0.3), ("aa", 0.5))
    assert with_score(SearchOptions(), "3di:1,ism:0.3,aa:0.5", db)[1].keys() == {ism_identity}  # the ISM matrix
    assert with_score(searcher.options, None, db) == (searcher.options, {})  # no --score: the options as they are
    ism = load_matrix(None, load_tokenizer("ism").matrix)
    tables = [
        load_matrix(None, "3di").restricted(db.alphabet.symbols),
        np.rint(0.3 * ism.restricted(db.track(ism_identity).alphabet.symbols)),
        np.rint(0.5 * load_matrix(None, "aa").restricted(AA_ALPHABET.symbols)),
    ]
    rows = [db.tokens, db.track(ism_identity).tokens, aa_indices(np.asarray(db.aa))]
    hits = searcher.search_one(db, 0)
    assert len(hits) == len(db)
    for hit in hits:
        aln, options = hit.alignment, searcher.options
        q = db.offsets[0] + aln.pairs[:, 0]
        t = db.offsets[hit.target] + aln.pairs[:, 1]
        columns = sum(int(m[r[q], r[t]].sum()) for m, r in zip(tables, rows, strict=True))
        gap_columns = aln.columns - len(aln.pairs)
        gaps = aln.gap_opens * options.gap_open + (gap_columns - aln.gap_opens) * options.gap_extend
        assert columns - gaps == hit.raw == aln.score


def test_evalues_come_from_the_header_the_shipped_fits_or_a_fit_of_each_combination(tracks_db, ism_identity):
    db = SequenceDB.load(tracks_db)
    plain = _searcher(db, "3di")
    assert not plain.evd_fitted and plain.evd == load_matrix(None, "3di").evd_for(10, 1)
    shipped = ("3di:1,aa:0.5", "3di:1,ism:0.25", "3di:1,ism:0.25,aa:0.5", "3di:1,ism:1", "3di:1,ism:1,aa:0.5")
    for text in shipped:  # fitted on the training entries, as are their homology probabilities
        s = _searcher(db, text)
        assert not s.evd_fitted and s.evd == shipped_evd(s.scorer.fit_key()), text
        find_fit(s.scorer.fit_key(), text)  # an InputError if none ships
        swapped = _searcher(db, ",".join(reversed(text.split(","))))  # a sum: the order --score names tracks in
        assert swapped.scorer.fit_key() == s.scorer.fit_key() and swapped.evd == s.evd and not swapped.evd_fitted
    alone = _searcher(db, f"{ism_identity}:1")  # another track's tokens alone: the E-values of its matrix header
    assert not alone.evd_fitted and alone.evd == load_matrix(None, "ism").evd_for(10, 1)
    fitted = {text: _searcher(db, text) for text in ("3di:1,ism:0.3", "3di:1,ism:0.3,aa:0.5", "3di:1,ism:0.7")}
    assert all(s.evd_fitted for s in fitted.values())
    assert len({(s.evd.lam, s.evd.k) for s in fitted.values()}) == 3
    s = fitted["3di:1,ism:0.7"]
    assert s.evd == fit_evd(s.scorer, db)
    assert isinstance(s.scorer.tracks, ScoreTracks) and len(s.scorer.tracks) == 2


def test_the_prefilter_seeds_the_same_whatever_order_score_names_tracks_in(tracks_db):
    """With amino acids named first, their 4-mers were seeded at the token threshold and no 3Di k-mer at all."""
    db = SequenceDB.load(tracks_db)
    seeds, hits = [], []
    for text in ("3di:1,aa:0.5", "aa:0.5,3di:1"):
        options, matrices = with_score(SearchOptions(max_evalue=1e9, exhaustive=False), text, db)
        searcher = Searcher(db, load_matrix(None, "3di"), options, matrices=matrices)
        names = searcher.scorer.names
        seeds.append(sorted((names[row], k, threshold) for row, _, k, threshold in searcher._prefilter.seeds))
        hits.append([(hit.target, hit.raw) for q in range(len(db)) for hit in searcher.search_one(db, q)])
    default = PrefilterSettings()
    assert seeds[0] == seeds[1] == [("aa", default.aa_kmer, default.aa_threshold),
                                    ("tokens", default.kmer, default.kmer_threshold)]
    assert hits[0] == hits[1]


def test_a_track_named_twice_under_two_names_is_refused(tracks_db, ism_identity):
    """``tokens`` is the main track's other name and ``ism`` the shipped tokenizer's identity: each scored twice
    would weigh one track twice in silence."""
    db = SequenceDB.load(tracks_db)
    for text in ("3di:1,tokens:0.5", f"3di:1,ism:0.3,{ism_identity}:0.2"):
        with pytest.raises(InputError, match="twice"):
            with_score(SearchOptions(), text, db)


def test_a_missing_track_is_a_clear_error(domains_dir, tracks_db, tmp_path, ism_identity):
    single = tmp_path / "single"
    _run("createdb", domains_dir, single, "-t", "1")
    result = runner.invoke(app, ["search", str(tracks_db), str(single), "-o", str(tmp_path / "x.m8"),
                                 "--score", "3di:1,ism:0.3"])
    assert result.exit_code == EXIT_ERROR
    assert f"no {ism_identity} track" in result.output and "--tracks 3di," in result.output
    # queries without the track: token FASTA hold one track
    fasta = tmp_path / "q.fasta"
    db = SequenceDB.load(tracks_db)
    fasta.write_text(f">q\n{db.alphabet.decode(db.token_seq(0))}\n")
    result = runner.invoke(app, ["search", str(fasta), str(tracks_db), "-o", str(tmp_path / "x.m8"),
                                 "--score", "3di:1,ism:0.3"])
    assert result.exit_code == EXIT_ERROR
    assert f"the queries have no {ism_identity} track" in result.output
    with pytest.raises(InputError, match="no ism"):
        _searcher(SequenceDB.load(single), "3di:1,ism:0.3")
    result = runner.invoke(app, ["createdb", str(fasta), str(tmp_path / "f"), "--tracks", "3di,ism"])
    assert result.exit_code == EXIT_ERROR and "a token FASTA holds the one it was made with" in result.output


def test_structures_are_encoded_with_every_track_of_the_score(domains_dir, tracks_db, tmp_path):
    query = domains_dir / "d1ycca_.pdb.gz"
    _run("search", query, tracks_db, "-o", tmp_path / "db.m8", "--score", "3di:1,ism:0.3,aa:0.5", *EVERYTHING)
    _run("easy-search", query, domains_dir, tmp_path / "easy.m8", "--score", "3di:1,ism:0.3,aa:0.5", *EVERYTHING)
    assert (tmp_path / "db.m8").read_text() == (tmp_path / "easy.m8").read_text()
    hits = [line.split("\t") for line in (tmp_path / "db.m8").read_text().splitlines()]
    assert hits[0][:2] == ["d1ycca_", "d1ycca_"] and len(hits) == 5


def test_the_shipped_residual_ism_tokens_are_a_track_of_their_own(domains_dir, tmp_path, ism_identity):
    residual = load_tokenizer("ism-residual")
    assert residual.identity not in (ism_identity, "ism") and residual.codebook.base is not None
    db_path = tmp_path / "db"
    _run("createdb", domains_dir, db_path, "--tracks", "3di,ism,ism-residual", "-t", "1")
    db = SequenceDB.load(db_path)
    assert db.track_names == ["3di", ism_identity, residual.identity, "aa"]
    _run("createdb", domains_dir, tmp_path / "alone", "--tokenizer", "ism-residual", "-t", "1")
    alone = SequenceDB.load(tmp_path / "alone")
    np.testing.assert_array_equal(db.track(residual.identity).tokens, alone.tokens)
    # commands that read one track (learn-matrix, fit-evalue) read the one their --tokenizer names
    led = load_search_db([db_path], "ism-residual")
    assert led.track_names == [residual.identity, "3di", ism_identity, "aa"]
    np.testing.assert_array_equal(led.tokens, alone.tokens)
    np.testing.assert_array_equal(led.track("3di").tokens, db.tokens)
    # the scores measured in docs/benchmarks.md have shipped E-value and probability fits
    for text in ("ism:1,ism-residual:1", "ism:1,ism-residual:1,aa:0.5", "3di:1,ism:0.25,ism-residual:0.25",
                 "3di:1,ism:0.25,ism-residual:0.25,aa:0.5"):
        s = _searcher(db, text)
        assert not s.evd_fitted and s.evd == shipped_evd(s.scorer.fit_key()), text
        find_fit(s.scorer.fit_key(), text)  # an InputError if none ships
    query, score = domains_dir / "d1ycca_.pdb.gz", "ism:1,ism-residual:1,aa:0.5"
    columns = ("--format-output", "query,target,evalue,prob")
    _run("search", query, db_path, "-o", tmp_path / "db.m8", "--score", score, *columns, *EVERYTHING)
    _run("easy-search", query, domains_dir, tmp_path / "easy.m8", "--score", score, *columns, *EVERYTHING)
    assert (tmp_path / "db.m8").read_text() == (tmp_path / "easy.m8").read_text()
    hits = [line.split("\t") for line in (tmp_path / "db.m8").read_text().splitlines()]
    assert hits[0][:2] == ["d1ycca_", "d1ycca_"] and float(hits[0][3]) > 0.99
    assert all(0.0 <= float(h[3]) <= 1.0 for h in hits)
    result = runner.invoke(app, ["search", str(query), str(db_path), "-o", str(tmp_path / "x.m8"),
                                 "--score", "ism:1,ism-residual:0.5", *columns])
    assert result.exit_code == EXIT_ERROR and "no fit for --score" in result.output


def test_scope40_ranking_takes_a_score(tracks_db):
    from ismtk.bench.scope40 import rank_by_search

    base = SearchOptions(threads=1)
    ranked, names = rank_by_search([tracks_db], options=replace(base, score=parse_score("3di:1,ism:0.3,aa:0.5")))
    assert set(ranked) == set(names) and all(ranked[q][0][0] == q for q in names)


def test_the_default_is_3di_aa_where_both_sides_carry_amino_acids(tracks_db, tmp_path):
    _run("search", tracks_db, tracks_db, "-o", tmp_path / "default.m8", *EVERYTHING)
    _run("search", tracks_db, tracks_db, "-o", tmp_path / "aa.m8", "--aa-weight", "0.5", *EVERYTHING)
    assert (tmp_path / "default.m8").read_text() == (tmp_path / "aa.m8").read_text()
    # token FASTA carry no amino acids: the default is tokens alone there, as --score 3di (the fast mode)
    db = SequenceDB.load(tracks_db)
    auto = SearchOptions(aa_weight=None)
    assert with_aa_weight(auto, db).aa_weight == 0.5 and with_aa_weight(auto, db.select([0])).aa_weight == 0
    # one target entry is too few to fit on, but the shipped matrix's combined score has shipped parameters
    assert with_aa_weight(auto, db.select([0]), matrix=load_matrix(None, "3di")).aa_weight == 0.5
    single = Searcher(db.select([0]), load_matrix(None, "3di"), SearchOptions(aa_weight=None))
    assert single.options.aa_weight == 0.5 and not single.evd_fitted
    assert with_aa_weight(auto, db, replace(db, aa=None)).aa_weight == 0
    fasta = tmp_path / "q.fasta"
    fasta.write_text("".join(f">{n}\n{db.alphabet.decode(db.token_seq(i))}\n" for i, n in enumerate(db.names)))
    _run("search", fasta, tracks_db, "-o", tmp_path / "fasta.m8", *EVERYTHING)
    _run("search", fasta, tracks_db, "-o", tmp_path / "tokens.m8", "--score", "3di", *EVERYTHING)
    _run("search", tracks_db, tracks_db, "-o", tmp_path / "db_tokens.m8", "--aa-weight", "0", *EVERYTHING)
    tokens = (tmp_path / "tokens.m8").read_text()
    assert (tmp_path / "fasta.m8").read_text() == tokens
    # the same hits, ranges and scores as the database queries searched by tokens alone (fident and mismatch count
    # amino acids where both sides carry them)
    def kept(path):
        rows = [line.split("\t") for line in path.read_text().splitlines()]
        return [[c for k, c in enumerate(row) if k not in (2, 4)] for row in rows]

    assert kept(tmp_path / "tokens.m8") == kept(tmp_path / "db_tokens.m8")


def test_scaling_decoys_shuffle_every_track_of_a_residue_together(tracks_db, monkeypatch):
    """The scaling benchmark's decoys (benchmarks/search_scaling.py) keep the real entries and copy each drawn entry
    with its residues in a random order, every track and the amino acid of a residue moving together."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from search_scaling import with_decoys

    db = SequenceDB.load(tracks_db)
    grown = with_decoys(db, 3 * len(db), chunk=4)
    assert len(grown) == 3 * len(db) and grown.track_names == db.track_names
    assert grown.names[: len(db)] == db.names
    np.testing.assert_array_equal(grown.offsets[: len(db) + 1], db.offsets)

    def residues(source: SequenceDB, i: int) -> np.ndarray:
        rows = slice(source.offsets[i], source.offsets[i + 1])
        columns = [source.tokens[rows], *(t.tokens[rows] for t in source.tracks.values()), source.aa[rows]]
        return np.stack([np.asarray(c, np.int64) for c in columns], axis=1)

    shuffled = 0
    for i in range(len(db), len(grown)):
        source = db.names.index(grown.names[i].split("_", 1)[1])
        mine, theirs = residues(grown, i), residues(db, source)
        assert sorted(map(tuple, mine)) == sorted(map(tuple, theirs))
        shuffled += not np.array_equal(mine, theirs)
    assert shuffled == len(grown) - len(db)


def test_fit_evd_script_stores_what_a_search_fits(tracks_db, tmp_path, monkeypatch):
    """benchmarks/fit_evd.py (the shipped multi-track E-value fits) stores, under a score's key, the parameters a
    search of the same entries fits for that score itself."""
    import sys
    from pathlib import Path

    from ismtk.search.evalue import read_evd_fits

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from fit_evd import main

    db = SequenceDB.load(tracks_db)
    names, out, text = tmp_path / "names.txt", tmp_path / "evd.json", "3di:1,ism:0.3"
    names.write_text("".join(f"{n}\n" for n in db.names))
    monkeypatch.setattr(sys, "argv", ["fit_evd.py", "--db", str(tracks_db), "--names", str(names), "--score", text,
                                      "--out", str(out)])
    main()
    searcher = _searcher(db, text)
    assert searcher.evd_fitted  # not a shipped score: fitted on these entries
    fit = read_evd_fits(out)[searcher.scorer.fit_key()]
    assert (fit["lambda"], fit["k"]) == (searcher.evd.lam, searcher.evd.k)
    assert (fit["gap_open"], fit["gap_extend"]) == (searcher.evd.gap_open, searcher.evd.gap_extend)


def test_fit_prob_script_stores_its_fit_under_the_key_a_search_looks_up(tracks_db, tmp_path, monkeypatch):
    """benchmarks/fit_prob.py (the shipped ``prob`` fits) stores a fit under the key of the score a search scores
    with, keeps the fits of other scores, replaces its own on a second run, and ranks homologs above the others."""
    import sys
    from pathlib import Path

    from ismtk.search.prob import ProbFit, read_fits, write_fits

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from fit_prob import labelled_scores, main

    db = SequenceDB.load(tracks_db)
    labels, names = _label_files(tmp_path, db)
    out, text = tmp_path / "prob.json", "3di:1,ism:0.3"
    other = ProbFit("another score", "0123456789abcdef", 0.0, 1.0, 0.0, "elsewhere")
    write_fits(out, [other])
    for name in ("first", "second"):
        monkeypatch.setattr(sys, "argv", ["fit_prob.py", "--db", str(tracks_db), "--lookup", labels, "--train", names,
                                          "--bench", names, "--name", name, "--score", text, "--out", str(out)])
        main()
    searcher = _searcher(db, text)
    fits = read_fits(out)
    assert [f.name for f in fits] == ["another score", "second"] and fits[0] == other
    assert fits[1].key == searcher.scorer.fit_key()
    options, matrices = with_score(SearchOptions(max_evalue=float("inf"), max_seqs=len(db), trace=False), text, db)
    matrix = load_matrix(None, "3di")
    scores, qlen, tlen, homologous, _ = labelled_scores(db, list(db.names), LABELS, options, matrix, matrices)
    assert homologous.sum() == 4 and (~homologous).sum() == 16  # same superfamily / different fold, ordered pairs
    prob = fits[1].probability(scores, qlen, tlen)
    assert prob[homologous].min() > prob[~homologous].max()


def test_matrix_cv_learns_each_fold_group_s_matrix_without_its_alignments(tracks_db, domains_dir, tmp_path,
                                                                            monkeypatch, capsys):
    """benchmarks/matrix_cv.py judges a matrix recipe out of sample: the matrix that searches a fold group's queries
    is learned from the alignments that touch none of that group's domains, and every query is judged once."""
    import sys
    from itertools import combinations
    from pathlib import Path

    from ismtk.search.pairs import read_alignments

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import matrix_cv

    db = SequenceDB.load(tracks_db)
    labels, names = _label_files(tmp_path, db)
    (tmp_path / "pairs.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in combinations(sorted(db.names), 2)))
    aln = tmp_path / "all.aln"
    _run("align-pairs", domains_dir, "--pairs", tmp_path / "pairs.tsv", "-o", aln)
    groups = matrix_cv.fold_groups(list(db.names), LABELS, 3)
    assert sorted(len(g) for g in groups) == [1, 2, 2]  # one fold each

    learned_from = []
    real = matrix_cv.learn_matrix

    def spy(counted, files, *args, **kwargs):
        learned_from.append({n for f in files for a in read_alignments(f) for n in (a.name1, a.name2)})
        return real(counted, files, *args, **kwargs)

    monkeypatch.setattr(matrix_cv, "learn_matrix", spy)
    monkeypatch.setattr(sys, "argv", ["matrix_cv.py", "--db", str(tracks_db), "--lookup", labels, "--queries", names,
                                      "--set", "all", str(aln),
                                      "--folds", "3", "--weights", "0", "0.5", "--pseudocount", "1",
                                      "--min-tm", "0.3"])
    matrix_cv.main()
    assert len(learned_from) == 3
    for held, touched in zip(groups, learned_from, strict=True):
        assert touched and not touched & set(held)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| all |")]
    assert len(rows) == 2
    for row in rows:  # each query judged once, with the matrix of its own group: 4 have a family member
        family, superfamily, fold = (c.strip() for c in row.strip("|").split("|")[2:])
        assert family.endswith("(n=4)") and 0.0 <= float(family.split()[0]) <= 1.0
        assert superfamily == fold == "nan (n=0)"


@pytest.mark.parametrize(("aa_weight", "comp_bias"), [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0)])
def test_an_evalue_cut_off_reports_what_filtering_every_hit_reports(tracks_db, aa_weight, comp_bias):
    """Under a finite -e the reversed query is aligned only for targets whose raw score reaches the cut-off (a
    bound: the corrected score is lower): the hits are those of a search that keeps every hit, then filters."""
    db = SequenceDB.load(tracks_db)

    def hits(cut: float) -> list[list[tuple]]:
        options = SearchOptions(max_evalue=cut, aa_weight=aa_weight, comp_bias=comp_bias)
        searched = Searcher(db, load_matrix(None, "3di"), options).search(db)
        return [[(h.target, h.raw, h.score, h.evalue) for h in query] for query in searched]

    every = hits(float("inf"))
    evalues = sorted(e for query in every for *_, e in query)
    middle = evalues[len(evalues) // 2]
    for cut in (evalues[3], middle, 10.0):
        assert hits(cut) == [[h for h in query if h[3] <= cut] for query in every]
    assert 0 < sum(e <= middle for e in evalues) < len(evalues)


def test_a_matrix_for_a_track_the_score_leaves_out_is_refused(tracks_db, tmp_path):
    """--matrix scores the database's own (main) tokens: with a score of its other tracks only, it was ignored."""
    args = ["search", tracks_db, tracks_db, "-o", tmp_path / "x.m8", "--matrix", "ism", *EVERYTHING]
    result = runner.invoke(app, [str(a) for a in [*args, "--score", "ism:1,aa:0.5"]])
    assert result.exit_code == 1 and "is for the target's own tokens (3di), which the score does not" in result.output
    _run(*args[:5], "--matrix", "3di", "--score", "3di:1,ism:0.25,aa:0.5", *EVERYTHING)


def test_a_residual_folder_s_matrix_learned_for_other_tokens_is_refused(tmp_path):
    """The residual codebook clustered again after its matrix.out was learned: its tokens mean other things."""
    import shutil
    from pathlib import Path

    import ismtk
    from ismtk.workflows.search import resolve_matrix

    folder = tmp_path / "ism"
    shutil.copytree(Path(ismtk.__file__).parent / "data" / "ism", folder)
    codebook = folder / "residual" / "codebook.json"
    data = json.loads(codebook.read_text())
    data["centroids"][0][0] += 0.5
    codebook.write_text(json.dumps(data))
    with pytest.raises(InputError, match="was learned for ism:"):
        resolve_matrix(None, load_tokenizer(folder / "residual"))


def test_a_weight_that_rounds_a_track_to_nothing_is_refused():
    """rint(0.04 x BLOSUM62) is all zeros: the search was that of the other tracks, with E-values fitted afresh."""
    blosum = load_matrix("blosum62", "aa").scores
    with pytest.raises(InputError, match="a weight of 0.04 rounds every score of track 2 to 0"):
        ScoreTracks.weighted([blosum, blosum], [1.0, 0.04])
    assert len(ScoreTracks.weighted([blosum, blosum], [1.0, 0.05])) == 2
