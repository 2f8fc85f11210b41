"""Sequence databases for search: token (and amino-acid) sequences in memory and on disk.

On-disk format (``ismtk createdb``): a folder holding

* ``ismtk-db.json``: ``{"format": "ismtk-db", "version": 1, "tokenizer": IDENTITY, "alphabet": SYMBOLS,
  "entries": N, "residues": R, "amino_acids": true|false}``; ``IDENTITY`` is the stable identity of the
  tokenizer that made the tokens (``3di``, or ``ism:`` and 12 hex digits for an ISM tokenizer, see
  :mod:`ismtk.tokenizers`), never a path. Databases of older versions hold ``ism`` (the shipped ISM model)
  or the absolute path of an ISM tokenizer folder; they still load.
* ``names.txt``: the N entry names, one per line;
* ``offsets.npy``: ``(N + 1,) int64``, entry ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``;
* ``tokens.npy``: ``(R,) uint8`` token indices into the alphabet, all entries concatenated;
* ``tokens.K.npy`` (K = 1, 2, ...; when the header lists ``"tracks"``): more token tracks of the same residues,
  ``(R,) uint8`` like ``tokens.npy``; ``"tracks"`` is a list of ``{"tokenizer": IDENTITY, "alphabet": SYMBOLS}``,
  the K-th entry describing ``tokens.K.npy`` (``createdb --tracks 3di,ism``). Databases without the key hold
  one token track;
* ``aa.npy`` (when ``amino_acids``): ``(R,) uint8`` ASCII amino-acid letters aligned with ``tokens``;
* ``ca.npy`` and ``ca_frames.npy`` (when ``"ca": true``; databases made from structures): C-alpha coordinates
  aligned with ``tokens``, ``(R, 3) int16`` on a per-entry grid, and ``(N, 4) float32`` each entry's grid centre
  and step (:mod:`ismtk.search.ca`). Older databases have no ``"ca"`` key and no coordinates.

The header may also hold ``"evd"``: E-value parameters already fitted on this database (``createdb`` stores those of
its default score), a list of ``{"key": KEY, "gap_open": G, "gap_extend": E, "lambda": L, "k": K}`` keyed by what
the fit depends on besides the database (see :class:`ismtk.search.search.Searcher`).

Arrays are memory-mapped on load, so opening a database costs only reading its names.

>>> from ismtk.sequence import Alphabet
>>> db = SequenceDB.from_records([("a", np.array([0, 1, 2], np.uint8), "MKV")], Alphabet("ACD"), "3di")
>>> len(db), db.residues, db.alphabet.decode(db.token_seq(0)), db.aa_seq(0)
(1, 3, 'ACD', 'MKV')
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ismtk.atomic import atomic_folder
from ismtk.errors import InputError
from ismtk.search.ca import CaCoords
from ismtk.search.matrix import EvdParams
from ismtk.sequence import AA_ALPHABET, TOKENIZER_TAG, Alphabet, aa_indices, header_tag, read_fasta_records

__all__ = [
    "AA_TRACK",
    "DB_FORMAT",
    "DB_VERSION",
    "SequenceDB",
    "TokenTrack",
    "fasta_tokens",
    "is_db",
    "may_hold_db",
    "read_header",
]

DB_FORMAT = "ismtk-db"
DB_VERSION = 1
_HEADER = "ismtk-db.json"
#: The name of the amino-acid track (every other track is named by its tokenizer's identity).
AA_TRACK = "aa"


@dataclass(frozen=True)
class TokenTrack:
    """One more token track of a database: ``tokens`` ``(R,) uint8`` indices into ``alphabet``, one per residue."""

    alphabet: Alphabet
    tokens: np.ndarray


@dataclass(frozen=True)
class SequenceDB:
    """Named token sequences (and optionally their amino acids and C-alpha coordinates), concatenated.

    ``tokens`` ``(R,) uint8`` indices into ``alphabet``, ``offsets`` ``(N + 1,) int64``, ``aa`` ``(R,) uint8``
    ASCII letters or ``None``; ``tokenizer`` is the identity of what made the tokens (``aa`` for amino acids);
    ``ca`` the C-alpha coordinates or ``None``; ``tracks`` more token tracks of the same residues by their
    tokenizer's identity; ``fits`` E-value parameters fitted on these very entries, by
    key (kept only by copies of the same entries).
    """

    names: list[str]
    offsets: np.ndarray
    tokens: np.ndarray
    alphabet: Alphabet
    tokenizer: str
    aa: np.ndarray | None = None
    ca: CaCoords | None = None
    tracks: dict[str, TokenTrack] = field(default_factory=dict)
    fits: dict[str, EvdParams] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def residues(self) -> int:
        return int(self.offsets[-1])

    def lengths(self) -> np.ndarray:
        """``(N,) int64`` sequence lengths."""
        return np.diff(self.offsets)

    def _entry(self, i: int) -> int:
        """Entry index ``i`` as a list takes it (negative from the end); :class:`IndexError` past either end."""
        n = len(self.names)
        if not -n <= i < n:
            raise IndexError(f"entry {i} of a database of {n} entries")
        return int(i) % n

    def token_seq(self, i: int) -> np.ndarray:
        """``(L,) uint8`` tokens of entry ``i``."""
        i = self._entry(i)
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def aa_seq(self, i: int) -> str:
        """Amino acids of entry ``i`` (raises :class:`InputError` if the database has none)."""
        if self.aa is None:
            raise InputError("this database holds no amino acids (made from token FASTA; make it from structures, "
                             "or search the tokens alone)")
        i = self._entry(i)
        return self.aa[self.offsets[i] : self.offsets[i + 1]].tobytes().decode("ascii")

    def ca_coords(self, i: int) -> np.ndarray:
        """``(L, 3) float64`` C-alpha coordinates (A) of entry ``i`` (raises :class:`InputError` if there are none)."""
        if self.ca is None:
            raise InputError(
                "this database holds no C-alpha coordinates (made from token FASTA or by an older createdb)"
            )
        i = self._entry(i)
        return self.ca.entry(i, int(self.offsets[i]), int(self.offsets[i + 1]))

    @property
    def track_names(self) -> list[str]:
        """The tracks this database holds: its tokenizer's identity, the other token tracks', then ``aa``."""
        return [self.tokenizer, *self.tracks, *([AA_TRACK] if self.aa is not None else [])]

    def track(self, name: str) -> TokenTrack:
        """The token track made by tokenizer identity ``name`` (the main one or another); :class:`InputError`
        naming the tracks held otherwise."""
        if name == self.tokenizer:
            return TokenTrack(self.alphabet, self.tokens)
        if name in self.tracks:
            return self.tracks[name]
        raise InputError(
            f"no {name} track in this input (it holds {', '.join(self.track_names)}); make the database with "
            f"'ismtk createdb STRUCTURES... DB --tracks {self.tokenizer},{name}', or give structure files"
        )

    def led_by(self, name: str) -> SequenceDB:
        """The same entries with the token track of tokenizer identity ``name`` as the main one (the others, the
        former main one among them, stay tracks): what a command that reads one token track reads."""
        if name == self.tokenizer:
            return self
        lead = self.track(name)
        tracks = {self.tokenizer: TokenTrack(self.alphabet, self.tokens)}
        tracks |= {other: track for other, track in self.tracks.items() if other != name}
        return SequenceDB(self.names, self.offsets, lead.tokens, lead.alphabet, name, self.aa, self.ca, tracks)

    def as_amino_acids(self) -> SequenceDB:
        """The same entries with the amino acids as tokens over :data:`AA_ALPHABET` (for sequence search)."""
        if self.aa is None:
            raise InputError("amino-acid search needs a database with amino acids")
        return SequenceDB(self.names, self.offsets, aa_indices(self.aa), AA_ALPHABET, "aa", self.aa, self.ca)

    def named(self, names: str | Sequence[str]) -> SequenceDB:
        """The entries called ``names`` (or the one called so), in that order (:meth:`select`); :class:`InputError`
        lists missing ones."""
        names = [names] if isinstance(names, str) else names
        index = {name: i for i, name in enumerate(self.names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise InputError(f"{len(missing)} names are not in the database, e.g. {', '.join(missing[:5])}")
        repeated = [n for n, count in Counter(names).items() if count > 1]
        if repeated:  # a database names each entry once (load refuses one that does not)
            raise InputError(f"{len(repeated)} names are asked for more than once, e.g. {', '.join(repeated[:5])}")
        return self.select([index[n] for n in names])

    def select(self, entries: list[int]) -> SequenceDB:
        """Entries ``entries`` (indices) only, in that order, with everything they carry."""
        ids = np.asarray(entries, dtype=np.int64)
        if not len(ids):
            raise InputError("no sequences: the database would be empty")
        n = len(self.names)
        if ((ids < -n) | (ids >= n)).any():
            raise IndexError(f"entries {ids[(ids < -n) | (ids >= n)][:5].tolist()} of a database of {n} entries")
        ids = ids % n
        lengths = self.lengths()[ids]
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        rows = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in ids])
        aa = None if self.aa is None else np.asarray(self.aa[rows])
        ca = None if self.ca is None else self.ca.select(ids, self.offsets)
        tracks = {name: TokenTrack(t.alphabet, np.asarray(t.tokens[rows])) for name, t in self.tracks.items()}
        return SequenceDB([self.names[i] for i in ids], offsets, np.asarray(self.tokens[rows]), self.alphabet,
                          self.tokenizer, aa, ca, tracks)

    @classmethod
    def from_records(
        cls,
        records: Iterable[tuple[str, np.ndarray, str | None]],
        alphabet: Alphabet,
        tokenizer: str,
        ca: Iterable[np.ndarray] | None = None,
    ) -> SequenceDB:
        """Build from ``(name, (L,) uint8 tokens, amino acids or None)``; all or none must carry amino acids.
        ``ca``: each record's ``(L, 3)`` C-alpha coordinates (A), in record order, if known. What :meth:`load` would
        call damaged is refused here: a name repeated or holding white space, an entry without tokens, tokens outside
        ``alphabet``, amino acids that are not ASCII letters."""
        names, chunks, aas = [], [], []
        seen: set[str] = set()
        for name, tokens, aa in records:
            values = np.asarray(tokens)
            if name in seen or not name or name.split() != [name]:
                why = "repeated" if name in seen else "empty or holds white space"
                raise InputError(f"entry name {name!r} is {why}; give each entry a name of its own, one word")
            if not len(values):
                raise InputError(f"{name}: no tokens; a database entry needs at least one residue")
            if values.dtype.kind not in "iu" or int(values.min()) < 0 or int(values.max()) >= len(alphabet):
                raise InputError(f"{name}: tokens must be integers from 0 to {len(alphabet) - 1} (indices into the "
                                 f"alphabet), got {values.dtype} values from {values.min()} to {values.max()}")
            if aa is not None and (len(aa) != len(values) or not (aa.isascii() and aa.isalpha())):
                raise InputError(f"{name}: {len(values)} tokens but {len(aa)} amino acids" if len(aa) != len(values)
                                 else f"{name}: amino acids must be ASCII letters")
            seen.add(name)
            names.append(name)
            chunks.append(values.astype(np.uint8))
            aas.append(aa)
        if not names:
            raise InputError("no sequences: the database would be empty")
        has_aa = [a is not None for a in aas]
        if any(has_aa) and not all(has_aa):
            raise InputError("amino acids are given for some entries but not all")
        offsets = np.zeros(len(names) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in chunks], out=offsets[1:])
        aa = np.frombuffer("".join(aas).encode("ascii"), dtype=np.uint8).copy() if all(has_aa) else None
        coords = None
        if ca is not None:
            ca = list(ca)
            if len(ca) != len(names) or any(len(c) != len(t) for c, t in zip(ca, chunks, strict=True)):
                raise InputError("C-alpha coordinates must be given for every residue of every entry")
            coords = CaCoords.encode(ca)
        return cls(names, offsets, np.concatenate(chunks), alphabet, tokenizer, aa, coords)

    @classmethod
    def from_fasta(cls, tokens_fasta: str | Path, alphabet: Alphabet, tokenizer: str) -> SequenceDB:
        """Read a token FASTA (symbols of ``alphabet``).

        Records tagged with another tokenizer than ``tokenizer`` (``tokenizer=`` in the header, as ``ismtk
        encode`` writes it) are an error; untagged records are taken as ``tokenizer``'s.
        """
        records = [(name, tokens, None) for name, tokens in fasta_tokens(tokens_fasta, alphabet, tokenizer)]
        try:
            return cls.from_records(records, alphabet, tokenizer)
        except InputError as exc:
            raise InputError(f"{tokens_fasta}: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the on-disk format (module docstring) to folder ``path``; it appears complete or not at all."""
        path = Path(path)
        if not may_hold_db(path):
            raise InputError(f"{path} exists and holds more than an ismtk database; refusing to overwrite it")
        with atomic_folder(path) as tmp:
            (tmp / "names.txt").write_text("".join(f"{n}\n" for n in self.names))
            np.save(tmp / "offsets.npy", np.asarray(self.offsets, dtype=np.int64))
            np.save(tmp / "tokens.npy", np.asarray(self.tokens, dtype=np.uint8))
            for k, track in enumerate(self.tracks.values(), 1):
                np.save(tmp / f"tokens.{k}.npy", np.asarray(track.tokens, dtype=np.uint8))
            if self.aa is not None:
                np.save(tmp / "aa.npy", np.asarray(self.aa, dtype=np.uint8))
            if self.ca is not None:
                np.save(tmp / "ca.npy", np.asarray(self.ca.values, dtype=np.int16))
                np.save(tmp / "ca_frames.npy", np.asarray(self.ca.frames, dtype=np.float32))
            header = {
                "format": DB_FORMAT, "version": DB_VERSION, "tokenizer": self.tokenizer,
                "alphabet": self.alphabet.symbols, "entries": len(self), "residues": self.residues,
                "amino_acids": self.aa is not None, "ca": self.ca is not None,
            }
            if self.tracks:
                header["tracks"] = [{"tokenizer": n, "alphabet": t.alphabet.symbols} for n, t in self.tracks.items()]
            if self.fits:
                header["evd"] = [
                    {"key": key, "gap_open": p.gap_open, "gap_extend": p.gap_extend, "lambda": p.lam, "k": p.k}
                    for key, p in self.fits.items()
                ]
            (tmp / _HEADER).write_text(json.dumps(header, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SequenceDB:
        """Open a database folder written by :meth:`save` (arrays memory-mapped).

        Raises :class:`InputError` naming the file at fault when a file is missing, truncated, of another
        type or shape than the format's, or when the files disagree.
        """
        path = Path(path)
        header = read_header(path)
        try:
            entries, amino_acids, tokenizer = header["entries"], header["amino_acids"], header["tokenizer"]
            typed = type(entries) is int and isinstance(amino_acids, bool) and isinstance(tokenizer, str)
            if not typed or not tokenizer or not isinstance(header.get("ca", False), bool):
                raise ValueError("entries, amino_acids, tokenizer and ca must be an integer, a boolean, a name and "
                                 "a boolean")
            alphabet = Alphabet(str(header["alphabet"]))
            described = [(str(t["tokenizer"]), Alphabet(str(t["alphabet"]))) for t in header.get("tracks", [])]
            fits = {
                str(f["key"]): EvdParams(int(f["gap_open"]), int(f["gap_extend"]), float(f["lambda"]), float(f["k"]))
                for f in header.get("evd", [])
            }
        except (KeyError, TypeError, ValueError, InputError) as exc:  # (InputError: an alphabet refused)
            raise InputError(f"{path / _HEADER}: incomplete header ({exc}); make the database again with createdb"
                             ) from exc
        try:
            names = (path / "names.txt").read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(_damaged(path / "names.txt", exc)) from exc
        offsets = _load_array(path / "offsets.npy", np.int64, 1)
        tokens = _load_array(path / "tokens.npy", np.uint8, 1, mmap=True)
        aa = _load_array(path / "aa.npy", np.uint8, 1, mmap=True) if amino_acids else None
        tracks = {}
        for k, (name, track_alphabet) in enumerate(described, 1):
            values = _load_array(path / f"tokens.{k}.npy", np.uint8, 1, mmap=True)
            if len(values) != len(tokens) or (len(values) and int(values.max()) >= len(track_alphabet)):
                raise InputError(f"{path / f'tokens.{k}.npy'}: disagrees with tokens.npy or its alphabet (damaged?); "
                                 "make the database again with createdb")
            tracks[name] = TokenTrack(track_alphabet, values)
        ca = None
        if header.get("ca", False):
            ca = CaCoords(_load_array(path / "ca.npy", np.int16, 2, mmap=True),
                          _load_array(path / "ca_frames.npy", np.float32, 2))
        if len(names) != entries or len(offsets) != len(names) + 1 or offsets[0] != 0 or offsets[-1] != len(tokens):
            raise InputError(f"{path}: database files disagree on the number of entries/residues (damaged?); "
                             "make it again with createdb")
        if aa is not None and len(aa) != len(tokens):
            raise InputError(f"{path}: aa.npy and tokens.npy disagree (damaged?); make it again with createdb")
        if ca is not None and (ca.values.shape != (len(tokens), 3) or ca.frames.shape != (len(names), 4)):
            raise InputError(f"{path}: ca.npy/ca_frames.npy disagree with the tokens (damaged?); make it again with "
                             "createdb")
        if ca is not None and not (np.isfinite(ca.frames).all() and (ca.frames[:, 3] > 0).all()):
            raise InputError(f"{path / 'ca_frames.npy'}: centres or grid steps that are not finite and positive "
                             "(damaged?); make the database again with createdb")
        lengths = np.diff(offsets)
        if (lengths < 0).any():
            raise InputError(f"{path / 'offsets.npy'}: offsets go backwards (damaged?); make it again with createdb")
        if not names:
            raise InputError(f"{path}: the database is empty")
        if len(tokens) and int(tokens.max()) >= len(alphabet):
            raise InputError(f"{path / 'tokens.npy'}: tokens beyond the alphabet of {len(alphabet)} (damaged?); make "
                             "the database again with createdb")
        unusable = next((name for name in names if name.split() != [name]), None)
        if unusable is not None:
            raise InputError(f"{path / 'names.txt'}: entry name {unusable!r} is empty or holds white space (damaged?); "
                             "make the database again with createdb")
        if aa is not None and not _LETTERS[aa].all():
            raise InputError(f"{path / 'aa.npy'}: amino acids that are not ASCII letters (damaged?); make the database "
                             "again with createdb")
        if len(set(names)) != len(names):
            repeated = next(name for name, n in Counter(names).items() if n > 1)
            raise InputError(f"{path / 'names.txt'}: entry {repeated} is named more than once (damaged?); make the "
                             "database again with createdb")
        if (lengths == 0).any():
            empty = names[int(np.flatnonzero(lengths == 0)[0])]
            raise InputError(f"{path}: entry {empty} has no tokens (written by an older createdb); make the database "
                             "again with createdb, which leaves such entries out")
        return cls(names, offsets, tokens, alphabet, tokenizer, aa, ca, tracks, fits)


#: The files of a database folder.
_DB_FILES = r"ismtk-db\.json|names\.txt|(offsets|tokens|tokens\.\d+|aa|ca|ca_frames)\.npy"
#: Bytes that are ASCII letters (what ``aa.npy`` may hold).
_LETTERS = np.zeros(256, bool)
_LETTERS[np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)] = True


def _load_array(path: Path, dtype: type, ndim: int, mmap: bool = False) -> np.ndarray:
    """A ``.npy`` array of the format's type and rank; :class:`InputError` naming the file otherwise."""
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(_damaged(path, exc)) from exc
    if array.dtype != dtype or array.ndim != ndim:
        raise InputError(f"{path}: a {array.ndim}-d {array.dtype} array where the database format has {ndim}-d "
                         f"{np.dtype(dtype)} (damaged, or not written by createdb); make it again with createdb")
    return array


def _damaged(path: Path, exc: BaseException) -> str:
    """Why database file ``path`` could not be read, and what to do, in one line."""
    text = str(exc)
    if isinstance(exc, FileNotFoundError):
        why = "missing"
    elif "allow_pickle" in text and not _starts_with(path, b"\x93NUMPY"):  # numpy takes any other file for a pickle
        why = "not a NumPy array file (zero-filled, overwritten, or a Git LFS pointer never fetched?)"
    elif "allow_pickle" in text or "Python objects" in text:  # (np.load's words without and with a memory map)
        why = "holds Python objects, which ismtk does not load (database arrays hold plain numbers)"
    elif isinstance(exc, (EOFError, UnicodeDecodeError)) or any(s in text for s in _TRUNCATED):
        why = "truncated or damaged"
    else:
        why = f"unreadable ({getattr(exc, 'strerror', None) or text})"
    return f"{path}: {why}; make the database again with createdb"


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError:
        return False


#: numpy's words for a file shorter than its header says.
_TRUNCATED = ("mmap length", "cannot reshape", "Failed to read all data", "EOF")


def fasta_tokens(path: str | Path, alphabet: Alphabet, tokenizer: str) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, (L,) uint8 tokens)`` of every record of a token FASTA, read as ``tokenizer``'s (its identity):
    records tagged with another tokenizer (``tokenizer=`` in the header, as ``ismtk encode`` writes it) are an
    error, untagged ones are taken as ``tokenizer``'s; a file without records is an error."""
    empty = True
    for name, description, text in read_fasta_records(path):
        empty = False
        tag = header_tag(description, TOKENIZER_TAG)
        if tag is not None and tag != tokenizer:
            raise InputError(f"{path}: record {name} holds {tag} tokens, but the file is read as {tokenizer} tokens; "
                             "keep the tokens of one tokenizer per file, read as that tokenizer's identity")
        yield name, alphabet.encode(text, f"{path}: {name}")
    if empty:
        raise InputError(f"{path}: no FASTA records (an empty file?)")


def read_header(path: str | Path) -> dict:
    """The header of the database folder ``path`` (its JSON object), refused (:class:`InputError`) when it is
    missing, unreadable or of another format or version; nothing else of the database is read."""
    path = Path(path)
    try:
        header = json.loads((path / _HEADER).read_text())
        if not isinstance(header, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not an ismtk database (no readable {_HEADER}); make one with createdb") from exc
    if header.get("format") != DB_FORMAT or header.get("version") != DB_VERSION:
        found = f"{header.get('format')} v{header.get('version')}"
        raise InputError(f"{path}: database format {found} is not supported")
    return header


def is_db(path: str | Path) -> bool:
    """True when ``path`` is a database folder."""
    return (Path(path) / _HEADER).is_file()


def may_hold_db(path: str | Path) -> bool:
    """Whether a database may be written to ``path``: nothing is there, a database holding only the files
    :meth:`SequenceDB.save` writes (replaced), or a folder empty but for hidden files (``.DS_Store``; replaced with
    it); never a folder with files or folders of someone else's (a hidden ``.git`` folder)."""
    path = Path(path)
    if not path.exists():
        return True
    if not path.is_dir():
        return False
    held = list(path.iterdir())
    ours = all(re.fullmatch(_DB_FILES, p.name) or p.name.startswith(".") for p in held)  # .DS_Store too
    return ours and (is_db(path) or all(p.name.startswith(".") and p.is_file() for p in held))
