"""SCOPe40 sensitivity-to-first-FP scoring: hand-made cases and Foldseek's Fig. 2 per-query rows."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from helpers import HOMOLOGS
from helpers import SHARED_DATA as SHARED
from typer.testing import CliRunner

from ismtk.bench.scope40 import (
    rank_by_search,
    read_query_results,
    score_queries,
    summarize,
    write_query_results,
    write_report,
)
from ismtk.cli import app
from ismtk.errors import InputError
from ismtk.search.db import SequenceDB
from ismtk.search.search import SearchOptions
from ismtk.workflows.search import load_search_db

LOOKUP = {
    "q": "a.1.1.1",
    "fam1": "a.1.1.1",
    "fam2": "a.1.1.1",
    "sfam": "a.1.1.2",
    "fold1": "a.1.2.1",
    "fold2": "a.1.3.1",
    "other": "b.1.1.1",
}
DATABASE = list(LOOKUP) + ["decoy"]


def test_walk_stops_at_the_first_false_positive_in_both_variants():
    ranked = {"q": ["q", "fam1", "sfam", "fold1", "other", "fam2", "fold2"]}
    self_hit, = score_queries(ranked, LOOKUP, DATABASE, "selfhit")
    assert self_hit.tp == (2, 1, 1) and self_hit.possible == (3, 1, 2) and self_hit.fp == 1
    no_self, = score_queries(ranked, LOOKUP, DATABASE, "noselfhit")
    assert no_self.tp == (1, 1, 1) and no_self.possible == (2, 1, 2)
    assert no_self.sensitivity() == pytest.approx((0.5, 1.0, 0.5))
    decoy_first, = score_queries({"q": ["decoy", "fam1"]}, LOOKUP, DATABASE, "noselfhit")
    assert decoy_first.tp == (0, 0, 0) and decoy_first.fp == 1



def test_true_positives_tied_with_the_first_false_positive_count_by_chance_of_coming_first():
    """Ties are broken by database order in a search's output; the score must not depend on it."""
    tied = [("fam1", 9), ("sfam", 7), ("decoy", 7), ("other", 7), ("fold1", 7), ("fam2", 3)]
    for order in (tied, [tied[0], tied[3], tied[2], tied[4], tied[1], tied[5]]):
        result, = score_queries({"q": order}, LOOKUP, DATABASE, "noselfhit")
        # sfam and fold1 are TPs tied with two FPs: each comes before both with probability 1/3
        assert result.tp == pytest.approx((1, 1 / 3, 1 / 3)) and result.fp == 1
    names_only, = score_queries({"q": [name for name, _ in tied]}, LOOKUP, DATABASE, "noselfhit")
    assert names_only.tp == (1, 1, 0)  # without scores the order given is the ranking
    clean, = score_queries({"q": [("fam1", 9), ("fam2", 9), ("sfam", 8)]}, LOOKUP, DATABASE, "noselfhit")
    assert clean.tp == (2, 1, 0) and clean.fp == 0

def test_summary_averages_each_level_over_queries_with_positives(tmp_path):
    ranked = {"q": ["fam1", "other"], "other": ["q"], "fold1": ["fold2", "q"]}
    rows = score_queries(ranked, LOOKUP, DATABASE, "noselfhit")
    s = summarize(rows)
    # q: fam 1/2, sfam 0/1, fold 0/2; other: nothing possible; fold1: fold 1/3 (q, fam1, fam2 are other sfams... )
    by_name = {r.name: r for r in rows}
    assert by_name["other"].possible == (0, 0, 0)
    fam_queries = [r for r in rows if r.possible[0] > 0]
    assert s.per_level_queries[0] == len(fam_queries)
    assert s.per_level[0] == pytest.approx(np.mean([r.sensitivity()[0] for r in fam_queries]))
    all_three = [r for r in rows if all(r.possible)]
    assert s.all_levels_queries == len(all_three) == 1
    assert s.all_levels == pytest.approx(all_three[0].sensitivity())
    write_query_results(tmp_path / "x.rocx", rows)
    again = read_query_results(tmp_path / "x.rocx")
    assert [(r.name, r.possible, r.fp) for r in again] == [(r.name, r.possible, r.fp) for r in rows]
    np.testing.assert_allclose([r.tp for r in again], [r.tp for r in rows], atol=1e-4)


def test_report_writes_tables_and_plots(tmp_path):
    summaries = write_report(tmp_path, LOOKUP, {"m1": {"q": ["fam1"]}, "m2": {"q": ["other"]}}, DATABASE)
    assert summaries["noselfhit"]["m1"].per_level[0] > summaries["noselfhit"]["m2"].per_level[0]
    for name in ("m1.selfhit.rocx", "m2.noselfhit.rocx", "summary.noselfhit.tsv", "cumulative.selfhit.png"):
        assert (tmp_path / name).stat().st_size > 0


FIG2 = SHARED / "foldseek" / "fig2"


@pytest.mark.skipif(not FIG2.is_dir(), reason="shared Foldseek Fig. 2 data not present")
@pytest.mark.parametrize("method", ["foldseek", "tm", "mmseqs", "dali"])
def test_summary_of_foldseek_fig2_rows_matches_their_means_and_the_published_auc(method):
    """Our reader + summary reproduce the plain column means of Foldseek's per-query rows; the gap to the
    published AUC (over 4,229 queries) implies per-level means of the 253 missing rows that are valid (in [0, 1])."""
    rows = read_query_results(FIG2 / f"{method}.rocx")
    with open(FIG2 / f"{method}.rocx") as handle:
        table = list(csv.DictReader(handle, delimiter="\t"))
    means = [np.mean([float(r[c]) for r in table]) for c in ("FAM", "SFAM", "FOLD")]
    s = summarize(rows)
    assert s.per_level_queries == (len(table),) * 3
    assert np.allclose(s.per_level, means, atol=2e-6)
    published = [float(v) for v in (FIG2 / f"{method}_auc.out").read_text().split()]
    missing = 4229 - len(table)
    implied = [(4229 * p - len(table) * m) / missing for p, m in zip(published, means, strict=True)]
    assert all(-1e-3 <= v <= 1 + 1e-3 for v in implied)


@pytest.mark.skipif(not FIG2.is_dir(), reason="shared SCOP lookup not present")
def test_possible_counts_agree_with_foldseek_where_the_lookup_is_complete():
    """Counting rules: with the (incomplete, 10,390 of 11,211) lookup every cumulative count is at most
    Foldseek's, and equal for a large share of queries."""
    lookup = dict(line.split()[:2] for line in (SHARED / "scop40" / "scop_lookup.fix.tsv").read_text().splitlines())
    rows = [r for r in read_query_results(FIG2 / "foldseek.rocx") if r.name in lookup]
    ours = {r.name: r for r in score_queries({r.name: [] for r in rows}, lookup, lookup, "selfhit")}
    equal = 0
    for r in rows:
        mine, theirs = np.cumsum(ours[r.name].possible), np.cumsum(r.possible)
        assert np.all(mine <= theirs)
        equal += bool(np.all(mine == theirs))
    assert equal > 0.15 * len(rows)


def test_benchmark_command_runs_on_fixtures(domains_dir, tmp_path):
    lookup = tmp_path / "lookup.tsv"
    lookup.write_text("d1ycca_\ta.3.1.1\nd451ca_\ta.3.1.1\nd1nu4a_\td.58.7.1\nd2hzca_\td.58.7.1\nd1c4qa_\tb.40.2.1\n")
    result = CliRunner().invoke(
        app, ["benchmark", "scope40", str(domains_dir), str(lookup), "-o", str(tmp_path / "out"), "-t", "1",
              "--exhaustive", "--label", "t"]
    )
    assert result.exit_code == 0, result.output
    rows = read_query_results(tmp_path / "out" / "t.noselfhit.rocx")
    assert {r.name for r in rows} == {"d1ycca_", "d451ca_", "d1nu4a_", "d2hzca_", "d1c4qa_"}
    assert np.mean([r.sensitivity()[0] for r in rows if r.possible[0]]) > 0.5
    # a domain labelled twice took the last label in silence; a label was a path out of the output folder
    twice = tmp_path / "twice.tsv"
    twice.write_text(lookup.read_text() + "d1ycca_\ta.3.1.1\nd1ycca_\tz.99.1.1\n")
    for args, said in [([str(twice)], "twice.tsv: line 7: d1ycca_ is labelled z.99.1.1, and a.3.1.1 on line 1"),
                       ([str(lookup), "--label", "../escaped"], "--label '../escaped': give a plain name")]:
        result = CliRunner().invoke(app, ["benchmark", "scope40", str(domains_dir), *args, "-o",
                                          str(tmp_path / "out2"), "-t", "1"])
        assert result.exit_code == 1 and said in result.output, result.output
    assert not (tmp_path / "escaped.noselfhit.rocx").exists()


def test_queries_given_as_their_own_database_rank_like_queries_by_name(domains_dir):
    """``query_db`` (e.g. tokens predicted from sequence) is searched in place of the entries of the same name."""
    by_name, names = rank_by_search([domains_dir], queries=list(HOMOLOGS), options=SearchOptions(threads=1))
    db = load_search_db([domains_dir], "3di")
    own = SequenceDB.from_records(
        ((q, db.token_seq(names.index(q)), None) for q in HOMOLOGS), db.alphabet, db.tokenizer
    )
    as_db, _ = rank_by_search([domains_dir], query_db=own, options=SearchOptions(threads=1))
    assert as_db == by_name and [name for name, _ in by_name[HOMOLOGS[0]][:2]] == list(HOMOLOGS)
    with pytest.raises(InputError, match="not both"):
        rank_by_search([domains_dir], queries=list(HOMOLOGS), query_db=own)
