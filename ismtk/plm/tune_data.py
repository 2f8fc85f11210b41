"""Training data of structure-tuning: amino-acid sequences paired with token streams, cropped and masked.

A token stream is given as ``PATH[:key=value]...`` with keys ``name`` (default: the file name up to its
first dot), ``weight`` (loss weight, default 1), ``alphabet`` (a tokenizer name such as ``3di``, or the
symbols in token order), ``codebook`` (a JSON file with ``alphabet`` and ``disorder_token``, as written
for ISM tokens) and ``ignore`` (the symbol of the disorder token s*, excluded from the loss). Without
``alphabet``/``codebook`` the stream name picks a known tokenizer's alphabet, else the tokenizer the file's
records name (``ismtk encode`` tags them; its s* is ignored unless ``ignore`` says otherwise), else
``Alphabet.of_size(K)`` with K the largest symbol seen.

Every random choice of an example (crop start, masked positions) is drawn from a generator seeded by
``(seed, epoch, index)``, so a batch is the same whatever the number of processes, and after a resume.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ismtk.errors import InputError
from ismtk.plm.esm import esm_alphabet
from ismtk.plm.heads import StreamInfo
from ismtk.sequence.fasta import tokenizer_tag
from ismtk.sequence.protein import ESM_RESIDUES, refuse_token_fasta
from ismtk.tokenizers import SYMBOLS, TOKENIZERS, Alphabet, Tokenizer, load_tokenizer, read_fasta, tokenizer_for

__all__ = [
    "MASK_FRACTION",
    "Batch",
    "Example",
    "StreamSpec",
    "TuneData",
    "collate",
    "load_tune_data",
    "make_example",
    "parse_stream",
]

#: Share of residues replaced by ``<mask>`` for the MLM loss (ESM2; all masked, none kept or swapped, as ISM).
MASK_FRACTION = 0.15


@dataclass(frozen=True)
class StreamSpec:
    """A token FASTA file and how to train on it."""

    path: Path
    name: str
    weight: float = 1.0
    alphabet: str | None = None
    ignore: str | None = None


def parse_stream(spec: str) -> StreamSpec:
    """Parse ``PATH[:name=N][:weight=W][:alphabet=A][:codebook=JSON][:ignore=S]``."""
    path, *options = spec.split(":")
    values: dict[str, str] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key not in ("name", "weight", "alphabet", "codebook", "ignore"):
            raise InputError(
                f"token stream {spec!r}: bad option {option!r}; use PATH[:name=N][:weight=W]"
                "[:alphabet=3di|SYMBOLS][:codebook=JSON][:ignore=SYMBOL]"
            )
        values[key] = value
    name = values.get("name") or Path(path).name.split(".")[0]
    try:
        weight = float(values.get("weight", 1.0))
    except ValueError:
        raise InputError(f"token stream {spec!r}: weight {values['weight']!r} is not a number") from None
    if not 0 <= weight < math.inf:
        raise InputError(f"token stream {spec!r}: weight {weight:g} must be a finite number, 0 or more")
    alphabet, ignore = values.get("alphabet"), values.get("ignore")
    if "codebook" in values:
        alphabet, ignore = _read_codebook(Path(values["codebook"]), ignore)
    elif alphabet in TOKENIZERS or (alphabet is None and name in TOKENIZERS):
        # its s* too, as a file tagged with it gets (it was trained on)
        alphabet, ignore = _tokenizer_alphabet(load_tokenizer(alphabet or name), ignore)
    if alphabet is not None:
        Alphabet(alphabet)  # validates
        if ignore is not None and ignore.upper() not in alphabet.upper():
            raise InputError(f"token stream {spec!r}: ignore symbol {ignore!r} is not in its alphabet {alphabet!r}")
    if ignore is not None and len(ignore) != 1:
        raise InputError(f"token stream {spec!r}: ignore must be one symbol, got {ignore!r}")
    return StreamSpec(Path(path), name, weight, alphabet, ignore)


def _read_codebook(path: Path, ignore: str | None) -> tuple[str, str | None]:
    """Alphabet and s* symbol of a codebook JSON (``alphabet``: symbols; ``disorder_token``: index or symbol)."""
    try:
        book = json.loads(path.read_text())
        symbols = book["alphabet"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a codebook JSON with an 'alphabet' entry ({exc})") from exc
    disorder = book.get("disorder_token")
    if ignore is None and disorder is not None:
        ignore = symbols[disorder] if isinstance(disorder, int) else str(disorder)
    return symbols, ignore


def _tagged_alphabet(spec: StreamSpec, tag: str) -> tuple[str, str | None]:
    """Alphabet and s* symbol of the tokenizer a token FASTA names (``ismtk encode`` tags its records)."""
    try:
        tokenizer = tokenizer_for(tag, source=str(spec.path))
    except InputError as exc:
        raise InputError(f"{exc}, or give the stream as {spec.path}:codebook=FOLDER/codebook.json") from None
    return _tokenizer_alphabet(tokenizer, spec.ignore)


def _tokenizer_alphabet(tokenizer: Tokenizer, ignore: str | None) -> tuple[str, str | None]:
    """A tokenizer's symbols, and ``ignore`` or else its s* symbol (an ISM codebook's disorder token)."""
    disorder = getattr(getattr(tokenizer, "codebook", None), "disorder_token", None)
    symbols = tokenizer.alphabet.symbols
    return symbols, ignore or (symbols[disorder] if disorder is not None else None)


def _tag_spells(tag: str, symbols: str) -> bool:
    """Whether the tokenizer a token FASTA names writes ``symbols`` (one its tag can be kept for)."""
    try:
        return tokenizer_for(tag).alphabet.symbols == symbols
    except InputError:
        return False


@dataclass
class TuneData:
    """Paired records: ``aa[i]`` is ``(L_i,) int64`` ESM alphabet indices, ``tokens[s][i]`` ``(L_i,) int64`` classes.

    Classes are token index + 1; 0 marks positions excluded from the stream's loss (s*).
    """

    names: list[str]
    aa: list[np.ndarray]
    tokens: list[list[np.ndarray]]
    streams: list[StreamInfo]
    notes: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def fingerprint(self) -> str:
        """SHA-256 of the records (names, amino acids, every stream's classes): what a resumed run must train on
        again, whatever files they were read from."""
        digest = hashlib.sha256()
        for k, name in enumerate(self.names):
            digest.update(name.encode() + b"\0" + self.aa[k].astype(np.int64).tobytes())
            for stream in self.tokens:
                digest.update(stream[k].astype(np.int64).tobytes())
        return digest.hexdigest()

    def subset(self, index: np.ndarray | list[int]) -> TuneData:
        idx = list(index)
        return TuneData(
            [self.names[i] for i in idx], [self.aa[i] for i in idx],
            [[t[i] for i in idx] for t in self.tokens], self.streams, self.notes,
        )


def load_tune_data(aa_fasta: str | Path, streams: list[StreamSpec]) -> TuneData:
    """Read the AA FASTA and every token FASTA, pair records by name and check lengths.

    Every AA record must appear in every stream with the same length; all mismatches are reported in
    one :class:`InputError`. Stream records without an AA sequence are ignored (counted in ``notes``).
    Residue letters are those of :func:`~ismtk.sequence.protein.read_protein_fasta` (either case, ``J`` read
    as ``X``), but nothing is removed: a gap or stop symbol, which has no token, is refused, as are empty
    records and names given twice.
    """
    if not streams:
        raise InputError("structure-tuning needs at least one token stream (--tokens FASTA)")
    refuse_token_fasta(aa_fasta)
    esm = esm_alphabet()
    table = np.full(256, -1, dtype=np.int64)
    for letter in ESM_RESIDUES:
        table[ord(letter)] = table[ord(letter.lower())] = esm.get_idx(letter)
    table[ord("J")] = table[ord("j")] = esm.get_idx("X")
    names, aa, seen = [], [], set()
    for name, seq in read_fasta(aa_fasta):
        codes = table[np.frombuffer(seq.encode("latin-1", errors="replace"), dtype=np.uint8)]
        if (codes < 0).any():
            bad = sorted({seq[i] for i in np.flatnonzero(codes < 0)})
            raise InputError(f"{aa_fasta}: record {name}: {''.join(bad)!r} are not amino-acid letters (gaps and "
                             "stops have no structure token; give one letter per residue)")
        if not len(codes):
            raise InputError(f"{aa_fasta}: record {name} is empty")
        if name in seen:
            raise InputError(f"{aa_fasta}: record name {name} appears twice")
        seen.add(name)
        names.append(name)
        aa.append(codes)
    if not names:
        raise InputError(f"{aa_fasta}: no sequences")
    notes: list[str] = []
    infos, all_tokens, problems = [], [], []
    for spec in streams:
        records: dict[str, str] = {}
        for name, seq in read_fasta(spec.path):
            if name in records:
                raise InputError(f"{spec.path}: record name {name} appears twice")
            records[name] = seq
        if not any(records.values()):
            raise InputError(f"{spec.path}: no token records (an empty file, or only empty records)")
        symbols, ignore_symbol = spec.alphabet, spec.ignore
        tag = tokenizer_tag(spec.path)
        if tag is not None and symbols is None:
            symbols, ignore_symbol = _tagged_alphabet(spec, tag)
            notes.append(f"stream {spec.name}: {tag} tokens (named by the file), s* = {ignore_symbol or 'none'}")
        elif tag is not None and not _tag_spells(tag, symbols):
            # (3Di letters are ISM symbols too: read as another tokenizer's, they trained in silence)
            raise InputError(f"{spec.path}: its records are {tag} tokens, but the stream {spec.name} is given another "
                             "alphabet; leave out :name=/:alphabet= (the file names its tokenizer) or give that "
                             "tokenizer's tokens")
        if symbols is None:
            seen = {c.upper() for seq in records.values() for c in seq}
            unknown = seen - set(SYMBOLS)
            if unknown:
                raise InputError(f"{spec.path}: symbols {''.join(sorted(unknown))!r} are not token symbols")
            symbols = SYMBOLS[: 1 + max(SYMBOLS.index(c) for c in seen)]
            notes.append(f"stream {spec.name}: alphabet not given; using the first {len(symbols)} token symbols")
        alphabet = Alphabet(symbols)
        ignore = alphabet.encode(ignore_symbol)[0] + 1 if ignore_symbol else 0
        columns = []
        for name, seq in zip(names, aa, strict=True):
            tokens = records.get(name)
            if tokens is None:
                problems.append(f"{name} missing from {spec.path}")
                continue
            if len(tokens) != len(seq):
                problems.append(f"{name}: {len(seq)} residues but {len(tokens)} tokens in {spec.path}")
                continue
            classes = alphabet.encode(tokens, f"{spec.path}: {name}").astype(np.int64) + 1
            if ignore:
                classes[classes == ignore] = 0
            columns.append(classes)
        extra = len(set(records) - set(names))
        if extra:
            notes.append(f"stream {spec.name}: {extra} records without an amino-acid sequence ignored")
        infos.append(StreamInfo(spec.name, symbols, ignore_symbol, spec.weight, tag))
        all_tokens.append(columns)
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise InputError(f"{len(problems)} amino-acid/token mismatches: {shown}{more}")
    if len({s.name for s in infos}) != len(infos):
        raise InputError(f"token streams need distinct names, got {[s.name for s in infos]}; add :name=...")
    return TuneData(names, aa, all_tokens, infos, notes)


@dataclass(frozen=True)
class Example:
    """One cropped, masked example: ``tokens``/``mlm``/``targets[s]`` are ``(T,) int64`` with ``T = L + 2``.

    ``tokens`` holds ``<cls> seq <eos>`` with masked residues as ``<mask>``; ``mlm`` the original residue at
    masked positions and -100 elsewhere; ``targets[s]`` the stream classes (0 at BOS/EOS and s*).
    """

    tokens: torch.Tensor
    mlm: torch.Tensor
    targets: list[torch.Tensor]


def make_example(data: TuneData, index: int, crop: int, rng: np.random.Generator, mask: bool = True) -> Example:
    """Crop record ``index`` to at most ``crop`` residues at a random start and mask 15% of it."""
    esm = esm_alphabet()
    length = len(data.aa[index])
    start = int(rng.integers(0, length - crop + 1)) if length > crop else 0
    window = slice(start, start + min(length, crop))
    aa = data.aa[index][window]
    n = len(aa)
    mlm = np.full(n, -100, dtype=np.int64)
    tokens = aa.copy()
    if mask:
        masked = rng.choice(n, size=max(1, round(MASK_FRACTION * n)), replace=False)
        mlm[masked] = aa[masked]
        tokens[masked] = esm.mask_idx
    ends = ([esm.cls_idx], [esm.eos_idx])
    return Example(
        torch.from_numpy(np.concatenate([ends[0], tokens, ends[1]])),
        torch.from_numpy(np.concatenate([[-100], mlm, [-100]])),
        [torch.from_numpy(np.concatenate([[0], t[index][window], [0]])) for t in data.tokens],
    )


@dataclass(frozen=True)
class Batch:
    """Padded micro-batch: ``tokens`` ``(B, T)`` (pad = ``<pad>``), ``mlm`` ``(B, T)`` (-100 = none),
    ``targets`` one ``(B, T)`` per stream (0 = none)."""

    tokens: torch.Tensor
    mlm: torch.Tensor
    targets: list[torch.Tensor]

    def to(self, device: torch.device) -> Batch:
        return Batch(self.tokens.to(device), self.mlm.to(device), [t.to(device) for t in self.targets])


def collate(examples: list[Example]) -> Batch:
    """Pad examples to the longest one."""
    pad = esm_alphabet().padding_idx
    width = max(len(e.tokens) for e in examples)

    def stack(rows: list[torch.Tensor], fill: int) -> torch.Tensor:
        out = torch.full((len(rows), width), fill, dtype=torch.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out

    streams = len(examples[0].targets)
    return Batch(
        stack([e.tokens for e in examples], pad),
        stack([e.mlm for e in examples], -100),
        [stack([e.targets[s] for e in examples], 0) for s in range(streams)],
    )
