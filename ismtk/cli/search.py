"""``ismtk createdb``, ``ismtk search`` and ``ismtk easy-search``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from ismtk.atomic import special_output
from ismtk.cli import console
from ismtk.cli.options import (
    DEFAULT_THREADS,
    INPUT,
    Alignment,
    FormatOutput,
    HitFilter,
    Judging,
    SearchInput,
    StructureInput,
    Threads,
    TokenizerOpt,
    check_file_output,
    check_output,
    output_option,
    refuse_overwriting,
    refuse_writing_into_databases,
    warn_untagged,
    with_option_groups,
)
from ismtk.errors import InputError
from ismtk.search.db import may_hold_db
from ismtk.search.m8 import DEFAULT_COLUMNS

__all__ = ["createdb", "easy_search", "merge_hits", "search"]

Predictor = Annotated[
    Path | None,
    typer.Option(
        "--predictor", rich_help_panel=INPUT,
        help="structure-tune export folder: QUERY is then a protein FASTA whose structure tokens are predicted "
        "from sequence alone (no structure needed).",
    ),
]


Tracks = Annotated[
    str | None,
    typer.Option(
        "--tracks", rich_help_panel=INPUT, show_default="--tokenizer's alone",
        help="Token tracks to store, comma-separated tokenizers (3di, ism, ism-residual, ISM folders), for search "
        "--score; the first (or --tokenizer) is the database's main one. Amino acids are always stored from "
        "structures.",
    ),
]


def _main_tokens(target: Path) -> str:
    """The tokens ``target`` is searched by without ``--tokenizer``, for messages: a database's or tagged FASTA's
    main tokenizer, else 3Di."""
    from ismtk.search.db import is_db, read_header
    from ismtk.sequence.fasta import tokenizer_tag
    from ismtk.workflows.search import is_fasta

    try:
        if is_db(target):
            return str(read_header(target).get("tokenizer") or "3di")
        if is_fasta(target) and target.is_file():
            return tokenizer_tag(target) or "3di"
    except InputError:  # a damaged input: the search says so
        pass
    return "3di"


@with_option_groups
def createdb(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Structure files, folders or path lists, or token FASTA files; then the DB folder."),
    ],
    tokenizer: TokenizerOpt = None,
    tracks: Tracks = None,
    reading: StructureInput = StructureInput(),
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """Encode structures once (or read token FASTA) into a search database folder (format: docs/search.md).

    The database names its tokenizers (3di, or ism:... for ISM tokens) by identities that do not depend on
    where a tokenizer lies. Missing or unreadable files, unusable chains, FASTA records without a sequence and
    entries whose name an earlier entry has are reported one line each and left out; the exit status is 3 then.

    Several token tracks, for search --score 3di:1,ism:0.25,aa:0.5: ismtk createdb structs/ db/ --tracks 3di,ism

    [bold]Example[/bold]: ismtk createdb structs/ db/
    """
    from ismtk.tokenizers import DEFAULT_TOKENIZER, load_tokenizer
    from ismtk.workflows.search import input_kind, open_input, start_encoding, with_default_fit

    if len(inputs) < 2:
        raise typer.BadParameter("give at least one input and the database folder")
    *sources, target = inputs
    if not may_hold_db(target):
        raise InputError(f"{target} exists and holds more than an ismtk database; give a new (or empty) folder for "
                         "the database (replacing one deletes the whole folder)")
    check_output(target)
    names = [name.strip() for name in tracks.split(",")] if tracks else []
    if len(names) > 1 and input_kind(sources) == "fasta":
        raise InputError("--tracks stores several token tracks of structures; a token FASTA holds the one it was "
                         "made with: give the structure files")
    leading = tokenizer or (names[0] if names else DEFAULT_TOKENIZER)
    files = start_encoding(sources, [leading, *names], threads)  # None unless structures are to be encoded
    sources = files or sources
    chosen = load_tokenizer(tokenizer) if tokenizer is not None else None
    stored = [load_tokenizer(name) for name in names]
    if tokenizer is None and not names:
        warn_untagged(sources)
    skips = console.Skips()
    with _encoding_progress(files is not None) as advance:
        db, used = open_input(sources, chosen or (stored[0] if stored else None), reading.read_options(), threads,
                              skips, "--tokenizer" if chosen else "--tracks", tracks=stored, progress=advance)
    lacking = [t.identity for t in stored if t.identity not in {db.tokenizer, *db.tracks}]
    if lacking:  # a database or token FASTA given: it holds the tracks it was made with
        held = f"{sources[0]} holds {', '.join(db.track_names)}" if input_kind(sources) == "db" else (
            "a token FASTA holds the one it was made with")
        raise InputError(f"--tracks {tracks}: the inputs lack {', '.join(lacking)} ({held}); give the structure files "
                         "to encode every track")
    # the default score's E-value parameters when none ship for it: fitted once here instead of at every search
    with_default_fit(db, used).save(target)
    console.info(f"wrote {len(db):,} entries ({db.residues:,} residues, {', '.join(db.track_names)}) -> {target}")
    skips.finish()


def _encoding_progress(encoding: bool) -> AbstractContextManager[Callable[..., None] | None]:
    """A progress bar for the structure files to encode, when there are any (None otherwise)."""
    return console.progress("encoding", total=None, unit="files") if encoding else nullcontext()


@with_option_groups
def search(
    query: SearchInput,
    target: SearchInput,
    *,
    tokenizer: TokenizerOpt = None,
    reading: StructureInput = StructureInput(),
    predictor: Predictor = None,
    alignment: Alignment = Alignment(),
    hits: HitFilter = HitFilter(),
    judging: Judging = Judging(),
    output: output_option("Hits table to write (.m8, tab-separated).", file=True),
    format_output: FormatOutput = DEFAULT_COLUMNS,
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """Search queries against a target with Smith-Waterman over structure tokens; hits as a Foldseek-style .m8.

    The target's tokenizer (named by a database or token FASTA, else --tokenizer) reads or encodes the queries and picks
    the default matrix. Each column scores tokens + 0.5 x BLOSUM62 of the amino acids where both sides carry them
    (3Di+AA; tokens alone for token FASTA, or with --score 3di, the fastest); --score sums any weighted tracks. Scores
    are corrected by the reversed-query score; E-values come from the matrix header for tokens alone, from ismtk's
    shipped fits for the shipped combinations (3Di+AA, ISM+AA, 3Di+ISM[+AA]), and are fitted on the target otherwise.

    Tokens, ISM tokens and amino acids: ismtk createdb structs/ db/ --tracks 3di,ism; ismtk search q.pdb db/ -o hits.m8
    --score 3di:1,ism:0.25,aa:0.5

    From sequence alone: ismtk search seqs.fasta db/ --predictor run/export -o hits.m8

    In 3 jobs: ismtk search q.pdb db/ -o s2.m8 --split 2/3 (and 1/3, 3/3); ismtk merge-hits s1.m8 s2.m8 s3.m8 -o hits.m8

    Judged in 3D: ismtk search query.pdb db/ -o hits.m8 --format-output query,target,prob,lddt,alntmscore
    --alignment-type tmalign --sort-by alntmscore

    [bold]Example[/bold]: ismtk search query.pdb db/ -o hits.m8 -e 0.001
    """
    _search(query, target, output, alignment, hits, judging, format_output, tokenizer, reading, threads, predictor)


@with_option_groups
def easy_search(
    query: SearchInput,
    target: SearchInput,
    output: Annotated[Path, typer.Argument(help="Hits table to write (.m8).", callback=check_file_output)],
    tmp: Annotated[
        Path | None, typer.Argument(help="Foldseek's temporary folder, taken and not needed (nothing is written "
                                    "there).", show_default=False)
    ] = None,
    *,
    tokenizer: TokenizerOpt = None,
    reading: StructureInput = StructureInput(),
    alignment: Alignment = Alignment(),
    hits: HitFilter = HitFilter(),
    judging: Judging = Judging(),
    format_output: FormatOutput = DEFAULT_COLUMNS,
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """Structures in, hits out, in one step (Foldseek's easy-search layout: QUERY TARGET OUTPUT [TMP]).

    The options are those of search, but for --predictor.

    [bold]Example[/bold]: ismtk easy-search query.pdb structs/ hits.m8
    """
    _refuse_shifted_arguments(output, tmp)
    if tmp is not None:
        console.info(f"{tmp}: a temporary folder is not needed (nothing is written there)")
    _search(query, target, output, alignment, hits, judging, format_output, tokenizer, reading, threads)


def _refuse_shifted_arguments(output: Path, tmp: Path | None) -> None:
    """Refuse Foldseek's ``easy-search Q1 Q2 TARGET OUT``, which this layout reads as query Q1, target Q2, output
    TARGET: the hits would replace a structure (or FASTA, or path list) and OUT would be taken for TMP."""
    from ismtk.structure.read import LIST_SUFFIXES, named_as_structure
    from ismtk.workflows.search import FASTA_SUFFIXES

    looks_input = named_as_structure(output.name) or output.name.lower().endswith(FASTA_SUFFIXES + LIST_SUFFIXES)
    tmp_is_file = tmp is not None and (tmp.is_file() or tmp.name.lower().endswith((".m8", ".m8.gz", ".tsv")))
    layout = "easy-search QUERY TARGET OUTPUT [TMP]"
    if output.is_file() and looks_input:
        why = f"{output}: the OUTPUT of {layout} is an existing input file, which the hits would replace"
    elif tmp_is_file:
        why = f"{tmp}: the TMP of {layout} names a file (the hits table?)"
    else:
        return
    raise InputError(f"{why}; easy-search takes one QUERY: give several query structures as a folder or a path "
                     "list (.txt)")


def _search(
    query: Path,
    target: Path,
    output: Path,
    alignment: Alignment,
    hits: HitFilter,
    judging: Judging,
    format_output: str,
    tokenizer: str | None,
    reading: StructureInput,
    threads: int,
    predictor: Path | None = None,
) -> None:
    from ismtk.structure.read import find_structure_files
    from ismtk.workflows.search import RELIABLE_FIT_ENTRIES, input_kind, search_to_m8

    refuse_overwriting(partial(find_structure_files, [query, target], keep_missing=True), output=output)
    refuse_writing_into_databases([query, target], output=output)
    if tokenizer is None and predictor is None and alignment.mode != "aa":
        warn_untagged([target])
        warn_untagged([query], f"the target's ({target}: {_main_tokens(target)})")
    options = alignment.search_options(threads, hits)
    if options.split is not None and special_output(output):
        raise InputError(f"{output}: --split writes its key file beside the .m8, so -o must name a file, not a device "
                         "or pipe")
    skips = console.Skips()
    with _encoding_progress(input_kind([target]) == "structures") as advance:
        run = search_to_m8([query], [target], output, alignment.matrix, tokenizer, alignment.mode, format_output,
                           options, reading.read_options(), skips, predictor, judging.options(), advance)
    for note in run.notes:
        console.warn(note)
    if run.evd_fitted and run.targets < RELIABLE_FIT_ENTRIES:
        # fit-evalue stores parameters in a matrix header, which serves the tokens alone
        store = " or store parameters with 'ismtk fit-evalue'" if not alignment.score and not run.aa_weight else ""
        console.warn(f"E-value parameters fitted on only {run.targets} target entries are rough; search a larger "
                     f"database{store} (E-values only, the ranking is unaffected)")
    if run.evd_fitted and alignment.score:
        console.info(f"E-values of --score {alignment.score}: lambda {run.evd.lam:.4g}, K {run.evd.k:.4g} (fitted on "
                     "the target)")
    elif run.evd_fitted and run.aa_weight > 0:
        console.info(f"E-values of token + {run.aa_weight:g} x amino-acid scores: lambda {run.evd.lam:.4g}, "
                     f"K {run.evd.k:.4g} (fitted on the target)")
    elif run.evd_fitted:
        console.warn(
            f"the matrix has no E-value parameters for gaps {options.gap_open}/{options.gap_extend}; fitted on the "
            f"target (lambda {run.evd.lam:.4g}, K {run.evd.k:.4g}); store them with 'ismtk fit-evalue'"
        )
    shard = f" (shard {options.split[0]}/{options.split[1]} of them)" if options.split else ""
    console.info(f"{run.queries:,} queries x {run.targets:,} targets{shard}: {run.hits:,} hits in {run.seconds:.1f} s "
                 f"-> {output}")
    skips.finish()


@with_option_groups
def merge_hits(
    shards: Annotated[list[Path], typer.Argument(help="The .m8 outputs of all N shards of one 'search --split I/N'.")],
    *,
    output: output_option("Merged hits table to write (.m8).", file=True),
) -> None:
    """Join the outputs of a split search into exactly the .m8 that one run over the whole database writes.

    Each shard's .m8 needs its key file beside it (<shard>.m8.shard, written by --split). Shards searched with
    --prefilter each kept their own --max-candidates: the merge ranks a superset of one prefiltered run's candidates.

    [bold]Example[/bold]: ismtk merge-hits s1.m8 s2.m8 s3.m8 -o hits.m8
    """
    from ismtk.search.merge import merge_hits as merge_shards

    refuse_overwriting(shards, output=output)
    hits = merge_shards(shards, output)
    console.info(f"{len(shards)} shards: {hits:,} hits -> {output}")
