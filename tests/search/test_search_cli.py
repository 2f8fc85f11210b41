"""createdb / search / easy-search / learn-matrix end to end through the command line."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import FAMILY_D58, HOMOLOGS, OTHER
from typer.testing import CliRunner

import ismtk
from ismtk.cli import app
from ismtk.cli.console import EXIT_ERROR, EXIT_SKIPPED
from ismtk.search.db import SequenceDB
from ismtk.search.m8 import DEFAULT_COLUMNS
from ismtk.search.matrix import load_matrix, read_matrix

runner = CliRunner()


def _run(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def _hits(path):
    return [line.split("\t") for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def db(domains_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "db"
    _run("createdb", domains_dir, path, "-t", "1")
    return path


def test_homolog_has_a_better_evalue_than_a_non_homolog(db, domains_dir, tmp_path):
    out = tmp_path / "hits.m8"
    # tokens alone (--aa-weight 0): E-values from the matrix header, not fitted on these 5 entries
    _run("search", domains_dir / f"{HOMOLOGS[0]}.pdb.gz", db, "-o", out, "--exhaustive", "-e", "1e9", "-t", "1",
         "--aa-weight", "0")
    rows = {r[1]: r for r in _hits(out)}
    assert len(next(iter(rows.values()))) == len(DEFAULT_COLUMNS.split(","))
    # E-values count chance hits in this 5-entry database (N = its residues), hence the modest homolog E-value
    assert float(rows[HOMOLOGS[0]][10]) < float(rows[HOMOLOGS[1]][10]) < 0.1
    assert OTHER not in rows or float(rows[OTHER][10]) > 10 * float(rows[HOMOLOGS[1]][10])
    assert list(rows)[:2] == [HOMOLOGS[0], HOMOLOGS[1]]  # self first, then the homolog
    # E = K m N exp(-lambda S): m the query's length, N the database's residues, S the corrected score
    columns = "target,qlen,corrected,evalue,qaln,taln,mismatch,alnlen"
    _run("search", domains_dir / f"{HOMOLOGS[0]}.pdb.gz", db, "-o", out, "--exhaustive", "-e", "1e9", "-t", "1",
         "--aa-weight", "0", "--format-output", columns)
    params, residues = load_matrix(None, "3di").evd_for(10, 1), SequenceDB.load(db).residues
    for _, qlen, corrected, e, qaln, taln, mismatch, alnlen in _hits(out):
        expected = params.k * int(qlen) * residues * math.exp(-params.lam * int(corrected))
        assert float(e) == pytest.approx(expected, rel=1e-3)
        # mismatches: aligned pairs (no gap on either side) whose letters differ
        pairs = [(a, b) for a, b in zip(qaln, taln, strict=True) if a != "-" and b != "-"]
        assert int(mismatch) == sum(a != b for a, b in pairs) and int(alnlen) == len(qaln)


def test_amino_acid_term_ranks_the_homolog_first_and_traces_combined_scores(db, domains_dir, tmp_path):
    out = tmp_path / "aa_term.m8"
    query = domains_dir / f"{HOMOLOGS[0]}.pdb.gz"
    columns = "query,target,raw,corrected,evalue,qaln,taln,cigar"
    _run("search", query, db, "-o", out, "--aa-weight", "1", "-e", "1e9", "--format-output", columns, "-t", "1")
    rows = {r[1]: r for r in _hits(out)}
    assert list(rows)[:2] == [HOMOLOGS[0], HOMOLOGS[1]]
    # E-value parameters fitted on 5 entries are rough; the order of the hits is what must hold
    assert float(rows[HOMOLOGS[0]][4]) < float(rows[HOMOLOGS[1]][4]) < float(rows[OTHER][4])
    plain = tmp_path / "plain.m8"
    _run("search", query, db, "-o", plain, "-e", "1e9", "--format-output", columns, "-t", "1")
    self_plain = next(r for r in _hits(plain) if r[1] == HOMOLOGS[0])
    # the self-alignment gains every residue's BLOSUM62 diagonal score
    assert int(rows[HOMOLOGS[0]][2]) > int(self_plain[2])
    assert rows[HOMOLOGS[0]][5] == rows[HOMOLOGS[0]][6] and rows[HOMOLOGS[0]][7].endswith("M")


def test_easy_search_takes_foldseeks_temporary_folder_and_leaves_it_alone(domains_dir, tmp_path):
    query = domains_dir / f"{HOMOLOGS[0]}.pdb.gz"
    result = runner.invoke(app, ["easy-search", str(query), str(query), str(tmp_path / "h.m8"), str(tmp_path / "tmp")])
    assert result.exit_code == 0 and "not needed" in result.output and not (tmp_path / "tmp").exists()
    assert _hits(tmp_path / "h.m8")[0][:2] == [HOMOLOGS[0], HOMOLOGS[0]]


def test_easy_search_with_chosen_columns_and_amino_acids(domains_dir, tmp_path):
    out = tmp_path / "aa.m8"
    query = domains_dir / f"{FAMILY_D58[0]}.pdb.gz"
    _run("easy-search", query, domains_dir, out, "--mode", "aa", "--format-output", "query,target,qaln,taln,evalue",
         "-t", "1", "--exhaustive")
    rows = _hits(out)
    self_row = next(r for r in rows if r[1] == FAMILY_D58[0])
    assert self_row[2] == self_row[3] and "-" not in self_row[2]
    assert all(len(r[2]) == len(r[3]) for r in rows)


def test_token_fasta_query_and_prefilter_find_the_same_top_hit(db, tmp_path):
    entries = SequenceDB.load(db)
    i = entries.names.index(HOMOLOGS[1])
    fasta = tmp_path / "q.fasta"
    fasta.write_text(f">{HOMOLOGS[1]}\n{entries.alphabet.decode(entries.token_seq(i))}\n")
    out = tmp_path / "q.m8"
    _run("search", fasta, db, "-o", out, "--prefilter", "--format-output", "query,target,bits", "-t", "1")
    assert _hits(out)[0][:2] == [HOMOLOGS[1], HOMOLOGS[1]]


@pytest.mark.parametrize(
    "extra", [["--aa-weight", "0"], ["--aa-weight", "0", "--prefilter"], [], ["--prefilter"]],
    ids=["tokens", "tokens-prefilter", "default", "default-prefilter"],
)
def test_two_threads_write_the_same_bytes_as_one(db, tmp_path, extra, monkeypatch):
    monkeypatch.setattr("ismtk.search.search.QUERY_WINDOW", 1)  # 5 queries in windows of 2, longest first in each
    columns = ["--format-output", DEFAULT_COLUMNS + ",raw,corrected,cigar,qaln,taln", "-e", "1e9"]
    _run("search", db, db, "-o", tmp_path / "t1.m8", *columns, "-t", "1", *extra)
    _run("search", db, db, "-o", tmp_path / "t2.m8", *columns, "-t", "2", *extra)
    assert (tmp_path / "t1.m8").read_bytes() == (tmp_path / "t2.m8").read_bytes()
    assert len(_hits(tmp_path / "t1.m8")) >= 5


@pytest.mark.parametrize(
    "extra", [[], ["--aa-weight", "0.5"], ["--alignment-type", "tmalign"]], ids=["tokens", "default", "tmalign"]
)
def test_three_shards_merged_equal_one_run(db, tmp_path, extra):
    columns = ["--format-output", DEFAULT_COLUMNS + ",raw,corrected,cigar", "-e", "1e9"]
    _run("search", db, db, "-o", tmp_path / "one.m8", *columns, "-t", "1", *extra)
    shards = [tmp_path / f"s{i}.m8" for i in (1, 2, 3)]
    for i, shard in enumerate(shards, 1):
        _run("search", db, db, "-o", shard, *columns, "-t", "1", "--split", f"{i}/3", *extra)
    assert sum(len(_hits(s)) for s in shards) == len(_hits(tmp_path / "one.m8")) == 25
    assert all(_hits(s) for s in shards)
    _run("merge-hits", shards[2], shards[0], shards[1], "-o", tmp_path / "merged.m8")
    assert (tmp_path / "merged.m8").read_text() == (tmp_path / "one.m8").read_text()
    # at most --max-seqs hits per query survive the merge, as in one run
    _run("search", db, db, "-o", tmp_path / "top2.m8", *columns, "-t", "1", "--max-seqs", "2", *extra)
    for i, shard in enumerate(shards, 1):
        _run("search", db, db, "-o", shard, *columns, "-t", "1", "--max-seqs", "2", "--split", f"{i}/3", *extra)
    _run("merge-hits", *shards, "-o", tmp_path / "merged2.m8")
    assert (tmp_path / "merged2.m8").read_text() == (tmp_path / "top2.m8").read_text()


def test_merge_hits_refuses_incomplete_or_mixed_shards(db, tmp_path):
    shards = [tmp_path / f"s{i}.m8" for i in (1, 2)]
    for i, shard in enumerate(shards, 1):
        _run("search", db, db, "-o", shard, "-t", "1", "--split", f"{i}/2")
    others = {extra: tmp_path / f"other{n}.m8" for n, extra in enumerate(
        (("--max-seqs", "3"), ("-e", "0.001"), ("--gap-open", "5"), ("--aa-weight", "0.25"), ("--prefilter",)))}
    for extra, other in others.items():
        _run("search", db, db, "-o", other, "-t", "1", "--split", "2/2", *extra)
    stored = SequenceDB.load(db)  # as many queries and residues, other names
    renamed = tmp_path / "renamed"
    replace(stored, names=[f"x{name}" for name in stored.names]).save(renamed)
    others["renamed"] = tmp_path / "renamed.m8"
    _run("search", renamed, db, "-o", others["renamed"], "-t", "1", "--split", "2/2")
    for args, message in [
        (["merge-hits", shards[0], "-o", tmp_path / "m.m8"], "missing [2]"),
        (["merge-hits", shards[0], shards[0], "-o", tmp_path / "m.m8"], "repeated [1]"),
        *((["merge-hits", shards[0], o, "-o", tmp_path / "m.m8"], "different searches") for o in others.values()),
        (["merge-hits", tmp_path / "one.m8", "-o", tmp_path / "m.m8"], "cannot read"),
        (["search", db, db, "-o", tmp_path / "m.m8", "--split", "3/2"], "1 <= I <= N"),
        (["search", db, db, "-o", tmp_path / "m.m8", "--split", "1/2", "--sort-by", "alntmscore"], "joins the shards"),
    ]:
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == EXIT_ERROR, (args, result.output)
        assert message in result.output
    assert not (tmp_path / "m.m8").exists()
    keys = shards[1].with_name(shards[1].name + ".shard")
    lines = keys.read_text().splitlines()
    keys.write_text("\n".join([lines[0], "1\tnot a score\t2", *lines[2:]]) + "\n")
    result = runner.invoke(app, ["merge-hits", str(shards[0]), str(shards[1]), "-o", str(tmp_path / "m.m8")])
    assert result.exit_code == EXIT_ERROR and "damaged shard key file" in result.output, result.output
    keys.write_text("\n".join([lines[0].replace('"split"', '"spilt"'), *lines[1:]]) + "\n")
    result = runner.invoke(app, ["merge-hits", str(shards[0]), str(shards[1]), "-o", str(tmp_path / "m.m8")])
    assert result.exit_code == EXIT_ERROR and "header's split is None" in result.output, result.output
    # a shard cut short by a killed copy, or one that is not the search's text
    gz = tmp_path / "s2.m8.gz"
    _run("search", db, db, "-o", gz, "-t", "1", "--split", "2/2")
    for damage, said in [(gz.read_bytes()[:-12], "damaged shard output"), (b"\xff\xfe\x00", "damaged shard output")]:
        gz.write_bytes(damage)
        result = runner.invoke(app, ["merge-hits", str(shards[0]), str(gz), "-o", str(tmp_path / "m.m8")])
        assert result.exit_code == EXIT_ERROR and f"{gz}: {said}" in result.output, result.output
    assert not (tmp_path / "m.m8").exists()
    _run("search", db, db, "-o", shards[1], "-t", "1")  # a whole search over a shard's output: its keys go too
    assert not keys.exists()


def test_user_errors_are_one_line_and_exit_1(db, tmp_path):
    bad = tmp_path / "bad.fasta"
    bad.write_text(">x\nAC*D\n")
    tokens_only = tmp_path / "tokens.fasta"
    tokens_only.write_text(">x\nACDEFGHIKL\n")
    for args, message in [
        (["search", bad, db, "-o", tmp_path / "x.m8"], "not in the alphabet"),
        (["search", db, db, "-o", tmp_path / "x.m8", "--matrix", tmp_path / "missing.out"], "neither a file"),
        (["search", db, db, "-o", tmp_path / "x.m8", "--format-output", "query,nonsense"], "unknown output column"),
        (["search", db, tmp_path, "-o", tmp_path / "x.m8"], "holds no structure file"),
        (["search", db, db, "-o", tmp_path / "x.m8", "--mode", "aa", "--aa-weight", "1"],
         "does not apply to --mode aa"),
        (["search", tokens_only, db, "-o", tmp_path / "x.m8", "--aa-weight", "1"], "queries' amino acids"),
    ]:
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == EXIT_ERROR, (args, result.output)
        assert message in result.output
    assert not (tmp_path / "x.m8").exists()


def test_fit_evalue_stores_parameters(db, tmp_path):
    out = tmp_path / "b62.out"
    said = _run("fit-evalue", "blosum62", db, "-o", out, "--mode", "aa", "--null-pairs", "200").output
    params = read_matrix(out).evd_for(10, 1)
    assert params is not None and 0 < params.lam < 2
    assert "fitted on only 5 entries are rough" in said and "amino-acid matrix" not in said
    said = _run("fit-evalue", "ism", db, "-o", tmp_path / "ism.out", "--null-pairs", "200").output
    assert "ism: it was learned for ism:" in said and "but these are 3di tokens" in said


def test_matrix_commands_report_skipped_inputs_and_keep_their_inputs(domains_dir, tmp_path):
    """Skipped files are warning lines and exit status 3, as in every batch command; -o never replaces an input."""
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(domains_dir, folder)
    (folder / "empty.pdb").write_text("")
    result = runner.invoke(app, ["fit-evalue", "3di", str(folder), "-o", str(tmp_path / "f.out"),
                                 "--null-pairs", "200"])
    assert result.exit_code == EXIT_SKIPPED and "skipped" in result.output and "empty.pdb" in result.output
    assert "UserWarning" not in result.output and (tmp_path / "f.out").is_file()
    tokens = tmp_path / "t.fasta"
    _run("encode", domains_dir, "-o", tokens, "--tokenizer", "3di")
    before = tokens.read_bytes()
    result = runner.invoke(app, ["fit-evalue", "3di", str(tokens), "-o", str(tokens)])
    assert result.exit_code == EXIT_ERROR and "names this input" in result.output and tokens.read_bytes() == before


def test_the_default_score_takes_the_shipped_evalue_fit(db, domains_dir, tmp_path):
    """The default score (tokens + 0.5 x amino acids) of the shipped tokenizers comes with E-value parameters fitted
    on the training entries: nothing is fitted on (or stored in) a five-entry database, nor said to be rough."""
    from ismtk.search.evalue import shipped_evd
    from ismtk.search.search import DEFAULT_OPTIONS, Searcher

    stored = SequenceDB.load(db)
    assert not stored.fits
    searcher = Searcher(stored, load_matrix(None, "3di"), DEFAULT_OPTIONS)
    assert not searcher.evd_fitted and searcher.evd_key is None
    assert searcher.evd == shipped_evd(searcher.scorer.fit_key())
    result = runner.invoke(app, ["search", str(domains_dir / f"{HOMOLOGS[0]}.pdb.gz"), str(db), "-o",
                                 str(tmp_path / "hits.m8")])
    assert result.exit_code == 0, result.output
    assert "rough" not in result.output and "fitted on" not in result.output


def test_a_matrix_without_evalue_parameters_gets_its_fit_stored_for_tokens_alone(db):
    """A tokenizer of one's own whose matrix carries no E-value line, tokens alone (a token FASTA has no amino
    acids): createdb's fit is stored and searches take it instead of fitting 4,000 pairs each time."""

    from ismtk.search.search import DEFAULT_OPTIONS, Searcher, with_fit

    stored = SequenceDB.load(db)
    tokens = SequenceDB(stored.names, stored.offsets, stored.tokens, stored.alphabet, stored.tokenizer)
    matrix = replace(load_matrix(None, "3di"), evd=())
    fitted = with_fit(tokens, matrix)
    assert len(fitted.fits) == 1
    assert Searcher(fitted, matrix, DEFAULT_OPTIONS).evd == Searcher(tokens, matrix, DEFAULT_OPTIONS).evd


def test_createdb_stores_the_default_fit_and_search_uses_it(domains_dir, tmp_path, monkeypatch):
    """Where no fit ships for the default score (a tokenizer or matrix of one's own, here: the shipped fits hidden),
    createdb fits its E-values once; a search with that score takes them from the database and writes the same bytes
    as one that fits them again, other scores refit."""
    from ismtk.search.search import DEFAULT_OPTIONS, Searcher, SearchOptions

    monkeypatch.setattr("ismtk.search.search.shipped_evd", lambda key: None)
    db = tmp_path / "db"
    _run("createdb", domains_dir, db, "-t", "1")
    stored = SequenceDB.load(db)
    assert len(stored.fits) == 1
    bare = tmp_path / "bare"
    SequenceDB(stored.names, stored.offsets, stored.tokens, stored.alphabet, stored.tokenizer, stored.aa,
               stored.ca, stored.tracks).save(bare)
    assert not SequenceDB.load(bare).fits and "evd" not in (bare / "ismtk-db.json").read_text()
    query = domains_dir / f"{HOMOLOGS[0]}.pdb.gz"
    for target in (db, bare):
        _run("search", query, target, "-o", tmp_path / f"{target.name}.m8", "-e", "1e9", "-t", "1")
    assert (tmp_path / "db.m8").read_bytes() == (tmp_path / "bare.m8").read_bytes()
    matrix = load_matrix(None, "3di")
    default = Searcher(stored, matrix, DEFAULT_OPTIONS)
    assert default.evd == stored.fits[default.evd_key] == Searcher(SequenceDB.load(bare), matrix, DEFAULT_OPTIONS).evd
    other = Searcher(stored, matrix, SearchOptions(aa_weight=1.0))
    assert other.evd_key not in stored.fits and other.evd != default.evd
    assert not stored.named(stored.names[:3]).fits  # a subset of the entries is another database


def test_an_untagged_fasta_read_as_default_tokens_is_warned_of(tmp_path, domains_dir):
    """An amino-acid FASTA (encode --aa-output) has the letters of 3Di: read without --tokenizer it is searched
    as 3Di tokens, so the command says so; a tagged token FASTA or --tokenizer gives no warning."""
    tokens, aa = tmp_path / "t.fasta", tmp_path / "aa.fasta"
    _run("encode", domains_dir, "-o", tokens, "--aa-output", aa, "--tokenizer", "3di")
    warned = _run("search", aa, tokens, "-o", tmp_path / "a.m8").output
    assert "aa.fasta: no tokenizer= tag" in warned and "--mode aa" in warned
    for extra in ([tokens, tokens], [aa, tokens, "--tokenizer", "3di"]):
        assert "no tokenizer= tag" not in _run("search", *extra, "-o", tmp_path / "b.m8").output
    blosum = _run("search", tokens, tokens, "-o", tmp_path / "c.m8", "--matrix", "blosum62").output
    assert "--matrix blosum62: it is an amino-acid matrix (BLOSUM62)" in blosum and "--mode aa" in blosum
    shipped = Path(ismtk.__file__).parent / "data" / "matrices"
    by_path = _run("search", tokens, tokens, "-o", tmp_path / "c.m8", "--matrix", shipped / "blosum62.out").output
    assert "it is an amino-acid matrix (BLOSUM62)" in by_path  # the file, not the name, says what it scores
    ism = _run("search", tokens, tokens, "-o", tmp_path / "c.m8", "--matrix", "ism").output
    assert "--matrix ism: it was learned for ism:" in ism and "but these are 3di tokens" in ism
    assert "learned for" not in _run("search", tokens, tokens, "-o", tmp_path / "c.m8", "--matrix", "3di").output
    # the advice works: --mode aa reads a FASTA as protein sequences, with the hits of the structures' amino acids
    _run("search", aa, aa, "-o", tmp_path / "fasta.m8", "--mode", "aa", "-t", "1")
    _run("search", domains_dir, domains_dir, "-o", tmp_path / "structures.m8", "--mode", "aa", "-t", "1")
    assert (tmp_path / "fasta.m8").read_text() == (tmp_path / "structures.m8").read_text() != ""
    refused = runner.invoke(app, ["search", str(tokens), str(aa), "-o", str(tmp_path / "d.m8"), "--mode", "aa"])
    assert refused.exit_code == EXIT_ERROR and "tokenizer=3di: structure tokens" in refused.output


def test_createdb_of_mismatched_token_fasta_names_what_the_user_gave(tmp_path):
    from ismtk.tokenizers.ism import default_identity

    threedi, ism = tmp_path / "a.3di.fasta", tmp_path / "b.ism.fasta"
    threedi.write_text(">x tokenizer=3di\nACDEFGHIKL\n")
    ism.write_text(f">y tokenizer={default_identity()}\nACDEFGHIKL\n")
    for inputs, extra, message in [
        ([ism, threedi], [], "a.3di.fasta holds 3di tokens, not the ism:"),  # not "of --tokenizer": none was given
        ([ism], ["--tracks", "3di,ism"], "a token FASTA holds the one it was made with"),
        ([ism], ["--tracks", "3di"], "not the 3di tokens of --tracks"),
    ]:
        result = runner.invoke(app, ["createdb", *map(str, inputs), str(tmp_path / "db"), *extra])
        assert result.exit_code == EXIT_ERROR and message in result.output, (inputs, extra, result.output)
        assert "--tokenizer" not in result.output.replace("ismtk encode --tokenizer", "")
    assert not (tmp_path / "db").exists()


def test_an_untagged_fasta_beside_a_tagged_one_is_said_to_be_read_as_its_tokens(tmp_path):
    """createdb reads an untagged token FASTA as the tokens of a tagged file beside it (here ISM), and says so."""
    from ismtk.tokenizers.ism import default_identity

    ism, bare = tmp_path / "a.ism.fasta", tmp_path / "b.fasta"
    ism.write_text(f">x tokenizer={default_identity()}\nACDEFGHIKL\n")
    bare.write_text(">y\nACDEFGHIKM\n")
    result = runner.invoke(app, ["createdb", str(ism), str(bare), str(tmp_path / "db")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "b.fasta: no tokenizer= tag, read as" in said and f"a.ism.fasta's ({default_identity()}) tokens" in said
    assert SequenceDB.load(tmp_path / "db").tokenizer == default_identity()


def test_library_options_refuse_texts_meant_for_the_command_line(db, tmp_path):
    from ismtk.errors import InputError
    from ismtk.search.search import SearchOptions
    from ismtk.workflows.search import search_to_m8

    for options, message in [({"score": "3di:1,aa:0.5"}, "parse_score"), ({"split": "1/2"}, "parse_split")]:
        with pytest.raises(InputError, match=message):
            SearchOptions(**options)
    with pytest.raises(InputError, match="mode '3di': tokens or aa"):
        search_to_m8(db, db, tmp_path / "x.m8", mode="3di")


def test_fident_is_cut_to_three_decimals_as_foldseek_writes_it(monkeypatch):
    from types import SimpleNamespace

    from ismtk.search import m8

    hit = SimpleNamespace(alignment=SimpleNamespace(columns=7))
    for identical, written in ((2, "0.285"), (7, "1.000"), (0, "0.000")):
        monkeypatch.setattr(m8, "_identity", lambda h, q, t, n=identical: n)
        assert m8.COLUMNS["fident"](hit, None, None) == written


def test_gzipped_shards_merge_as_plain_ones(db, tmp_path):
    """search -o X.m8.gz writes gzip; merge-hits read its shards as text (a UnicodeDecodeError traceback)."""
    import gzip

    _run("search", db, db, "-o", tmp_path / "one.m8", "-t", "1")
    shards = [tmp_path / f"s{i}.m8.gz" for i in (1, 2)]
    for i, shard in enumerate(shards, 1):
        _run("search", db, db, "-o", shard, "-t", "1", "--split", f"{i}/2")
    _run("merge-hits", *shards, "-o", tmp_path / "merged.m8.gz")
    assert gzip.decompress((tmp_path / "merged.m8.gz").read_bytes()) == (tmp_path / "one.m8").read_bytes()


def test_an_output_inside_an_input_database_is_refused(db, tmp_path):
    """-o db/names.txt replaced the database's names with hits and exited 0."""
    before = (db / "names.txt").read_bytes()
    for inside in (db / "names.txt", db / "hits.m8"):
        result = runner.invoke(app, ["search", str(db), str(db), "-o", str(inside)])
        assert result.exit_code != 0 and "inside the input database" in result.output
    assert (db / "names.txt").read_bytes() == before and not (db / "hits.m8").exists()


def test_createdb_through_a_link_replaces_the_database_it_points_to(domains_dir, tmp_path):
    """The link was moved aside and rmtree on it failed (a traceback), leaving a hidden link that broke every later
    createdb there."""
    real, link = tmp_path / "real", tmp_path / "link"
    _run("createdb", domains_dir / f"{HOMOLOGS[0]}.pdb.gz", real, "-t", "1")
    link.symlink_to(real, target_is_directory=True)
    _run("createdb", domains_dir, link, "-t", "1")
    assert link.is_symlink() and len((real / "names.txt").read_text().split()) == 5
    _run("createdb", domains_dir, link, "-t", "1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_a_shard_edited_after_its_search_is_refused(db, tmp_path):
    """Keys and lines were matched by position only: a shard sorted by target merged in silence into other hits."""
    shards = [tmp_path / f"s{i}.m8" for i in (1, 2)]
    for i, shard in enumerate(shards, 1):
        _run("search", db, db, "-o", shard, "-t", "1", "--split", f"{i}/2", "-e", "1e9")
    lines = shards[0].read_text().splitlines()
    edited = sorted(lines, key=lambda line: line.split("\t")[1])
    assert edited != lines
    shards[0].write_text("\n".join(edited) + "\n")
    result = runner.invoke(app, ["merge-hits", *map(str, shards), "-o", str(tmp_path / "m.m8")])
    assert result.exit_code == EXIT_ERROR and "is not the hit" in result.output, result.output


def test_split_to_a_device_is_refused(db, tmp_path):
    """--split -o /dev/stdout wrote its key file as a stray regular file /dev/stdout.shard."""
    result = runner.invoke(app, ["search", str(db), str(db), "-o", "/dev/null", "--split", "1/2"])
    assert result.exit_code == EXIT_ERROR and "-o must name a file" in result.output
    assert not Path("/dev/null.shard").exists()


def test_foldseek_s_several_queries_never_write_the_hits_over_a_structure(tmp_path):
    """Foldseek takes easy-search Q1 Q2 TARGET OUT; here that read as query Q1, target Q2, output TARGET, and the
    hits replaced the target structure with exit 0."""
    import shutil

    structures = Path(__file__).parents[1] / "data" / "structures"
    for name in ("1APS", "2HPR", "1ONC"):
        shutil.copy(structures / f"{name}.pdb.gz", tmp_path)
    target = tmp_path / "1ONC.pdb.gz"
    before = target.read_bytes()
    q1, q2 = (str(tmp_path / f"{name}.pdb.gz") for name in ("1APS", "2HPR"))
    for args, said in [([q1, q2, str(target), str(tmp_path / "hits.m8")], "the OUTPUT of easy-search"),
                       ([q1, q2, str(tmp_path / "new.m8"), str(tmp_path / "hits.m8")], "the TMP of easy-search")]:
        result = runner.invoke(app, ["easy-search", *args, "-t", "1"])
        assert result.exit_code == EXIT_ERROR and said in result.output, result.output
    assert target.read_bytes() == before and not (tmp_path / "new.m8").exists()
    _run("easy-search", q1, tmp_path, tmp_path / "hits.m8", tmp_path / "tmp", "-t", "1")  # Foldseek's layout of one
