"""SCOPe40 homology benchmark: sensitivity up to the first false positive (Foldseek, van Kempen et al. 2024, Fig. 2).

For each query, hits are walked best first until the first false positive: a labelled domain of another fold, or
any unlabelled entry (a decoy, e.g. a CATH domain). Before that, a hit of the same family is a family TP, of the
same superfamily but another family a superfamily TP, of the same fold but another superfamily a fold TP.
Sensitivity at a level = TPs / possible TPs among the labelled database entries. Hits of equal score are in no
order: when the first false positive ties with true positives, each of those counts as found with the probability
that it comes first in a random order of the tie (``t / (f + 1)`` of ``t`` TPs tied with ``f`` FPs), so that the
order of the database, which breaks ties in a search's output, does not move the figures (a database of labelled
domains followed by decoys would otherwise win every tie).

Two variants (Foldseek's ``bench.awk`` / ``bench.noselfhit.awk`` rules):

* ``selfhit``: the query's own hit is a family TP and the query counts in its family size (published numbers);
* ``noselfhit``: the self-hit is skipped and the query does not count itself in its family (``bench.noselfhit.awk``
  also takes one from the superfamily and fold counts, which ismtk does not: those are exact here).

The summary averages each level over the queries with at least one possible TP at that level, and, separately,
over the queries that have possible TPs at all three levels (the query set of Foldseek's figure).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ismtk.atomic import atomic_write
from ismtk.errors import InputError
from ismtk.names import read_names, read_rows
from ismtk.search.db import SequenceDB
from ismtk.search.search import SearchOptions

if TYPE_CHECKING:
    from ismtk.workflows.search import SkipHandler

__all__ = [
    "DEFAULT_LABEL",
    "LEVELS",
    "QueryResult",
    "Summary",
    "Variant",
    "plot_cumulative",
    "rank_by_search",
    "read_lookup",
    "read_query_results",
    "run_scope40",
    "score_queries",
    "sensitivity_loss",
    "summarize",
    "write_query_results",
    "write_report",
    "write_summary",
]

Variant = Literal["selfhit", "noselfhit"]
LEVELS = ("family", "superfamily", "fold")
#: Method name of a run in the outputs.
DEFAULT_LABEL = "ismtk"
_HEADER = ["NAME", "SCOP", "FAM", "SFAM", "FOLD", "FP", "FAMCNT", "SFAMCNT", "FOLDCNT"]


def read_lookup(path: str | Path) -> dict[str, str]:
    """``sid -> sccs`` of a ``sid<TAB>sccs`` lookup (Foldseek's ``scop_lookup.fix.tsv``); ``#`` lines skipped."""
    expect = "'sid<TAB>class.fold.superfamily.family'"
    lookup: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, (sid, sccs, *_) in read_rows(path, "SCOP labels", 2, expect):
        if sccs.count(".") != 3:
            raise InputError(f"{path}: line {number}: expected {expect}")
        if lookup.get(sid, sccs) != sccs:  # the same label again is harmless; another one is a broken table
            raise InputError(f"{path}: line {number}: {sid} is labelled {sccs}, and {lookup[sid]} on line "
                             f"{lines[sid]}; give each domain one label")
        lookup[sid] = sccs
        lines.setdefault(sid, number)
    return lookup


def _levels(sccs: str) -> tuple[str, str, str]:
    parts = sccs.split(".")
    return sccs, ".".join(parts[:3]), ".".join(parts[:2])


#: Each query's targets best first: names, or ``(name, score)`` pairs whose equal scores are ties.
Ranking = Sequence[str] | Sequence[tuple[str, float]]


@dataclass(frozen=True)
class QueryResult:
    """TPs found before the first FP and TPs possible, per level, for one query (``fp``: 1 if an FP was reached;
    TPs tied with the first FP count fractionally, see the module)."""

    name: str
    sccs: str
    tp: tuple[float, float, float]
    possible: tuple[int, int, int]
    fp: int

    def sensitivity(self) -> tuple[float, float, float]:
        """Per-level TP / possible (0 where nothing is possible)."""
        return tuple(t / p if p else 0.0 for t, p in zip(self.tp, self.possible, strict=True))


def score_queries(
    ranked: Mapping[str, Ranking],
    lookup: Mapping[str, str],
    database: Iterable[str],
    variant: Variant = "noselfhit",
) -> list[QueryResult]:
    """Score every query of ``ranked`` (query -> targets, best first: names, or ``(name, score)`` pairs, whose ties
    are scored as the module says) against ``lookup`` labels.

    ``database`` lists the searched entries: possible TPs are counted among its labelled ones; its unlabelled
    entries are decoys. Queries without a label raise :class:`InputError`.
    """
    labelled = [name for name in database if name in lookup]
    in_db = set(labelled)
    counts = [Counter(_levels(lookup[n])[level] for n in labelled) for level in range(3)]
    results = []
    for query, targets in ranked.items():
        if query not in lookup:
            raise InputError(f"query {query!r} has no SCOP label in the lookup")
        fam, sfam, fold = _levels(lookup[query])
        self_count = int(query in in_db)
        possible = [counts[0][fam], counts[1][sfam] - counts[0][fam], counts[2][fold] - counts[1][sfam]]
        if variant == "noselfhit":
            possible[0] -= self_count
        tp, fp = [0.0, 0.0, 0.0], 0
        for tie in _ties(targets):
            found, false = [0, 0, 0], 0
            for target in tie:
                if target == query and variant == "noselfhit":
                    continue
                label = lookup.get(target)
                tfam, tsfam, tfold = _levels(label) if label is not None else (None, None, None)
                if tfold != fold:  # another fold, or unlabelled (a decoy)
                    false += 1
                    continue
                found[0 if tfam == fam else 1 if tsfam == sfam else 2] += 1
            tp = [t + f / (false + 1) for t, f in zip(tp, found, strict=True)]  # each TP first with p 1/(false+1)
            if false:
                fp = 1
                break
        results.append(QueryResult(query, lookup[query], tuple(tp), tuple(possible), fp))
    return results


def _ties(targets: Ranking) -> Iterator[list[str]]:
    """The targets in groups of equal score, best first (one group per target when no scores are given)."""
    group: list[str] = []
    last = None
    for item in targets:
        name, score = item if isinstance(item, tuple) else (item, None)
        if group and (score is None or score != last):
            yield group
            group = []
        group.append(name)
        last = score
    if group:
        yield group


@dataclass(frozen=True)
class Summary:
    """Mean sensitivity per level and how many queries each mean is over (``per_level``: queries with a positive
    at that level; ``all_levels``: queries with positives at all three)."""

    per_level: tuple[float, float, float]
    per_level_queries: tuple[int, int, int]
    all_levels: tuple[float, float, float]
    all_levels_queries: int


def summarize(results: Sequence[QueryResult]) -> Summary:
    """Mean per-level sensitivities of :func:`score_queries` results (see :class:`Summary`)."""
    sens = np.array([r.sensitivity() for r in results], dtype=np.float64).reshape(-1, 3)
    has = np.array([[p > 0 for p in r.possible] for r in results], dtype=bool).reshape(-1, 3)
    per_level = tuple(float(sens[has[:, k], k].mean()) if has[:, k].any() else float("nan") for k in range(3))
    all3 = has.all(axis=1)
    all_levels = tuple(float(sens[all3, k].mean()) if all3.any() else float("nan") for k in range(3))
    return Summary(per_level, tuple(int(v) for v in has.sum(axis=0)), all_levels, int(all3.sum()))


def sensitivity_loss(reference: Sequence[float] | np.ndarray, value: Sequence[float] | np.ndarray) -> np.ndarray:
    """Relative loss ``1 - value / reference`` per level (negative: a gain); 0 where the reference is 0.

    >>> sensitivity_loss([0.5, 0.2, 0.0], [0.45, 0.25, 0.0]).round(3).tolist()
    [0.1, -0.25, 0.0]
    """
    reference, value = np.asarray(reference, np.float64), np.asarray(value, np.float64)
    return np.divide(reference - value, reference, out=np.zeros_like(reference), where=reference > 0)


def write_query_results(path: str | Path, results: Iterable[QueryResult]) -> None:
    """Per-query TSV in Foldseek's ``.rocx`` layout: ``NAME SCOP FAM SFAM FOLD FP FAMCNT SFAMCNT FOLDCNT``.

    As in Foldseek's files the counts are cumulative (``SFAMCNT`` includes the family, ``FOLDCNT`` the
    superfamily) while each sensitivity is over its own level only (``SFAM = TP / (SFAMCNT - FAMCNT)``).
    """
    with atomic_write(path, "w") as out:
        out.write("\t".join(_HEADER) + "\n")
        for r in results:
            s = r.sensitivity()
            cumulative = np.cumsum(r.possible)
            fields = [r.name, r.sccs, *(f"{v:.6g}" for v in s), str(r.fp), *map(str, cumulative)]
            out.write("\t".join(fields) + "\n")


def read_query_results(path: str | Path) -> list[QueryResult]:
    """Read a ``.rocx`` table (ours or Foldseek's Fig. 2 files); TPs are recovered as sensitivity x possible."""
    path = Path(path)
    try:
        handle = path.open()
    except OSError as exc:
        raise InputError(f"{path}: cannot read per-query results ({exc.strerror or exc})") from exc
    with handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if reader.fieldnames is None or not set(_HEADER) <= set(reader.fieldnames):
            raise InputError(f"{path}: expected the columns {' '.join(_HEADER)}")
        results = []
        for row in reader:
            fam, sfam, fold = (int(row[c]) for c in ("FAMCNT", "SFAMCNT", "FOLDCNT"))
            possible = (fam, sfam - fam, fold - sfam)
            tp = tuple(round(float(row[c]) * p, 4) for c, p in zip(("FAM", "SFAM", "FOLD"), possible, strict=True))
            results.append(QueryResult(row["NAME"], row["SCOP"], tp, possible, int(row["FP"])))
    return results


def write_summary(path: str | Path, summaries: Mapping[str, Summary]) -> None:
    """TSV with one row per method: per-level means, their query counts, and the all-levels means."""
    with atomic_write(path, "w") as out:
        out.write("method\tfamily\tsuperfamily\tfold\tn_family\tn_superfamily\tn_fold\t"
                  "family_all3\tsuperfamily_all3\tfold_all3\tn_all3\n")
        for name, s in summaries.items():
            values = [*s.per_level, *s.per_level_queries, *s.all_levels, s.all_levels_queries]
            out.write(name + "\t" + "\t".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in values) + "\n")


def plot_cumulative(path: str | Path, results: Mapping[str, Sequence[QueryResult]]) -> None:
    """PNG like Foldseek's Fig. 2: per level, sensitivity up to the 1st FP against the fraction of queries
    (sorted best first) for each method; queries without a positive at a level are left out of that panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
    for k, (ax, level) in enumerate(zip(axes, LEVELS, strict=True)):
        for name, rows in results.items():
            s = np.sort([r.sensitivity()[k] for r in rows if r.possible[k] > 0])[::-1]
            if len(s):
                ax.plot(np.arange(1, len(s) + 1) / len(s), s, label=f"{name} ({s.mean():.3f})")
        ax.set_title(level)
        ax.set_xlabel("fraction of queries")
        if ax.lines:
            ax.legend(fontsize=7)
    axes[0].set_ylabel("sensitivity up to the 1st FP")
    fig.tight_layout()
    with atomic_write(path, "wb") as out:
        fig.savefig(out, format="png", dpi=120)
    plt.close(fig)


def rank_by_search(
    database: Sequence[str | Path],
    queries: Sequence[str] | None = None,
    matrix: str | Path | None = None,
    tokenizer: str | Path | None = None,
    mode: Literal["tokens", "aa"] = "tokens",
    options: SearchOptions = SearchOptions(),
    query_db: SequenceDB | None = None,
    on_skip: SkipHandler | None = None,
) -> tuple[dict[str, list[tuple[str, int]]], list[str]]:
    """All-vs-all search of ``queries`` (names; default: every entry) against ``database`` (a DB folder, token
    FASTA or structures). Returns (query -> every target with a hit, best first, with the corrected score that
    ranks it) and the database's names.

    ``query_db`` replaces the queries' own entries, e.g. by tokens predicted from their sequences
    (:func:`ismtk.plm.predict.predicted_db`); its names must be database entries, so they are scored as those.
    Inputs of ``database`` left out (unreadable files, chains) go to ``on_skip``.
    """
    from ismtk.search.search import Searcher, with_aa_weight
    from ismtk.tokenizers import load_tokenizer
    from ismtk.workflows.search import open_input, resolve_matrix, resolve_score, score_mode, score_tokenizers

    mode, options = score_mode(mode, options)
    chosen = load_tokenizer(tokenizer) if tokenizer is not None else None
    tracks = score_tokenizers(options)
    db, db_tokenizer = open_input(database, chosen, threads=options.threads, on_skip=on_skip, mode=mode,
                                  need_tokenizer=matrix is None, tracks=tracks)
    if query_db is not None and queries is not None:
        raise InputError("give the queries by name or as a query database, not both")
    if query_db is not None:
        wanted = list(query_db.names)
    else:
        wanted = list(db.names) if queries is None else list(queries)
    known = set(db.names)
    missing = [q for q in wanted if q not in known]
    if missing:
        raise InputError(f"{len(missing)} queries are not in the database, e.g. {', '.join(missing[:5])}")
    if query_db is None:
        query_db = db.named(wanted)
    substitution = resolve_matrix(matrix, db_tokenizer, mode)
    options, matrices = resolve_score(with_aa_weight(options, db, query_db, substitution), db, tracks)
    options = replace(options, max_evalue=float("inf"), max_seqs=len(db), trace=False)
    searcher = Searcher(db, substitution, options, matrices=matrices)
    ranked = {
        wanted[k]: [(db.names[h.target], h.score) for h in hits] for k, hits in enumerate(searcher.search(query_db))
    }
    return ranked, list(db.names)


def write_report(
    out_dir: str | Path,
    lookup: Mapping[str, str],
    ranked: Mapping[str, Mapping[str, Ranking]],
    database: Sequence[str],
) -> dict[str, dict[str, Summary]]:
    """Score every method of ``ranked`` (method -> query -> targets) in both variants and write, in ``out_dir``,
    ``<method>.<variant>.rocx``, ``summary.<variant>.tsv`` and ``cumulative.<variant>.png``."""
    out_dir = Path(out_dir)
    summaries: dict[str, dict[str, Summary]] = {}
    for variant in ("selfhit", "noselfhit"):
        results = {m: score_queries(r, lookup, database, variant) for m, r in ranked.items()}
        for method, rows in results.items():
            write_query_results(out_dir / f"{method}.{variant}.rocx", rows)
        summaries[variant] = {m: summarize(rows) for m, rows in results.items()}
        write_summary(out_dir / f"summary.{variant}.tsv", summaries[variant])
        plot_cumulative(out_dir / f"cumulative.{variant}.png", results)
    return summaries


def run_scope40(
    database: str | Path,
    lookup: str | Path,
    out_dir: str | Path,
    queries: str | Path | None = None,
    label: str = DEFAULT_LABEL,
    matrix: str | Path | None = None,
    tokenizer: str | Path | None = None,
    mode: Literal["tokens", "aa"] = "tokens",
    options: SearchOptions = SearchOptions(),
    on_skip: SkipHandler | None = None,
) -> dict[str, dict[str, Summary]]:
    """The ``benchmark scope40`` command: search, score both variants, write the report (see :func:`write_report`).

    ``queries`` is a file of names (default: every database entry with a label); inputs left out go to ``on_skip``.
    """
    if not re.fullmatch(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*", label):  # it names files in out_dir and a TSV column
        raise InputError(f"--label {label!r}: give a plain name (letters, digits, '_', '.', '+', '-'; no '/', no "
                         "white space, not starting with '.')")
    labels = read_lookup(lookup)
    if queries is not None:
        wanted = read_names(queries)
    else:
        from ismtk.workflows.search import load_search_db

        wanted = [n for n in load_search_db([database], tokenizer, "tokens", on_skip=on_skip).names if n in labels]
        on_skip = None  # each left-out input is said once
    ranked, names = rank_by_search([database], wanted, matrix, tokenizer, mode, options, on_skip=on_skip)
    return write_report(out_dir, labels, {label: ranked}, names)
