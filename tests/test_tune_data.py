"""Pairing amino-acid and token FASTA, stream specs, crops and masks of structure-tuning."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from tiny_models import write_pairs

from ismtk.errors import InputError
from ismtk.plm.esm import esm_alphabet
from ismtk.plm.tune import epoch_items, read_groups, split_validation
from ismtk.plm.tune_data import collate, load_tune_data, make_example, parse_stream
from ismtk.train.order import epoch_permutation


def test_stream_spec_options_and_codebook(tmp_path):
    spec = parse_stream("run/tokens.3di.fasta")
    assert spec.name == "tokens" and spec.weight == 1.0 and spec.alphabet is None
    spec = parse_stream("x.fa:name=3di:weight=0.5")
    assert spec.alphabet == "ACDEFGHIKLMNPQRSTVWY" and spec.weight == 0.5
    book = tmp_path / "codebook.json"
    book.write_text(json.dumps({"alphabet": "ABCDEFGH", "disorder_token": 3}))
    spec = parse_stream(f"ism.fa:codebook={book}")
    assert (spec.alphabet, spec.ignore) == ("ABCDEFGH", "D")
    for bad in ("x.fa:colour=red", "x.fa:weight=heavy", "x.fa:alphabet=ABC:ignore=Z"):
        with pytest.raises(InputError, match="x.fa"):
            parse_stream(bad)


def test_all_mismatches_are_listed_in_one_error(tmp_path):
    aa, tok = write_pairs(tmp_path, n=4)
    records = tok.read_text().splitlines()
    records[1] = records[1][:-2]  # p0 two tokens short
    tok.write_text("\n".join(records[:-2]) + "\n")  # p3 missing
    with pytest.raises(InputError, match=r"2 amino-acid/token mismatches: p0: \d+ residues but \d+ tokens.*p3 missing"):
        load_tune_data(aa, [parse_stream(f"{tok}:alphabet=3di")])


@pytest.mark.parametrize(
    ("edit", "message"),
    [("empty", "record p1 is empty"), ("gap", "not amino-acid letters"), ("stop", "not amino-acid letters"),
     ("duplicate token record", "tok.fasta: record name p1 appears twice")],
)
def test_records_without_one_letter_per_token_are_refused_up_front(tmp_path, edit, message):
    """Gaps and stops have no structure token and would be trained on as residues; an empty record crashed the
    run at its first batch; a token record given twice was read as its last copy."""
    aa, tok = write_pairs(tmp_path, n=3)
    lines = aa.read_text().splitlines()
    if edit == "empty":
        lines[3] = ""
    elif edit == "gap":
        lines[3] = lines[3][:2] + "-" + lines[3][3:]
    elif edit == "stop":
        lines[3] = lines[3][:-1] + "*"
    else:
        tok.write_text(tok.read_text() + "\n".join(tok.read_text().splitlines()[2:4]) + "\n")
    aa.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=message):
        load_tune_data(aa, [parse_stream(f"{tok}:alphabet=3di")])


def test_a_token_fasta_given_as_the_sequences_is_refused(tmp_path):
    """3Di letters are amino-acid letters: a token FASTA (tagged by ismtk encode) given where the sequences go
    would be trained on as proteins."""
    aa, tok = write_pairs(tmp_path, n=2)
    tagged = tmp_path / "tagged.fasta"
    tagged.write_text("".join(f"{line} tokenizer=3di\n" if line.startswith(">") else f"{line}\n"
                              for line in tok.read_text().splitlines()))
    with pytest.raises(InputError, match="tagged.fasta: its records name tokenizer=3di: structure tokens"):
        load_tune_data(tagged, [parse_stream(f"{tok}:alphabet=3di")])


def test_lower_case_and_j_are_read_as_the_other_readers_do(tmp_path):
    aa, tok = write_pairs(tmp_path, n=2)
    lines = aa.read_text().splitlines()
    reference = load_tune_data(aa, [parse_stream(f"{tok}:alphabet=3di")]).aa[0]
    lines[1] = "J" + lines[1][1:].lower()
    aa.write_text("\n".join(lines) + "\n")
    edited = load_tune_data(aa, [parse_stream(f"{tok}:alphabet=3di")]).aa[0]
    np.testing.assert_array_equal(edited[1:], reference[1:])
    assert edited[0] == esm_alphabet().get_idx("X")


def test_disorder_token_becomes_class_zero_and_classes_are_shifted(tmp_path):
    aa, tok = write_pairs(tmp_path, n=3)
    streams = [parse_stream(f"{tok}:name=a:alphabet=3di"), parse_stream(f"{tok}:name=b:alphabet=3di:ignore=A")]
    data = load_tune_data(aa, streams)
    first = tok.read_text().splitlines()[1]
    expected = np.array(["ACDEFGHIKLMNPQRSTVWY".index(c) + 1 for c in first])
    np.testing.assert_array_equal(data.tokens[0][0], expected)
    np.testing.assert_array_equal(data.tokens[1][0], np.where(expected == 1, 0, expected))
    assert data.streams[1].ignore == "A"


def test_examples_are_cropped_masked_and_reproducible(tmp_path):
    aa, tok = write_pairs(tmp_path, n=2, min_len=50, max_len=60)
    data = load_tune_data(aa, [parse_stream(f"{tok}:alphabet=3di")])
    a = make_example(data, 0, 16, np.random.default_rng([1, 2, 0]))
    b = make_example(data, 0, 16, np.random.default_rng([1, 2, 0]))
    assert len(a.tokens) == 18 and a.tokens.equal(b.tokens) and a.mlm.equal(b.mlm)
    masked = a.mlm != -100
    assert masked.sum() == 2 and (a.tokens[masked] == 32).all()  # round(0.15 * 16) <mask> tokens
    assert a.targets[0][0] == 0 and a.targets[0][-1] == 0 and (a.targets[0][1:-1] > 0).all()
    batch = collate([a, make_example(data, 1, 100, np.random.default_rng(0))])
    assert batch.tokens.shape == batch.mlm.shape == batch.targets[0].shape
    assert (batch.tokens[0, 18:] == 1).all() and (batch.targets[0][0, 18:] == 0).all()


def test_groups_give_one_random_member_per_group_per_epoch(tmp_path):
    names = ["a_A", "a_B", "b_A", "c_A", "c_B", "c_C"]
    (tmp_path / "groups.tsv").write_text("a_A\ta\na_B\ta\nc_A\tc\nc_B\tc\nc_C\tc\n")
    groups = read_groups(str(tmp_path / "groups.tsv"), names)
    assert [g.tolist() for g in groups] == [[0, 1], [2], [3, 4, 5]]
    epochs = [epoch_items(groups, e, seed=0) for e in range(30)]
    for items in epochs:
        assert sorted(names[i][0] for i in items) == ["a", "b", "c"]
    assert len({tuple(sorted(items)) for items in epochs}) > 1  # members change between epochs
    assert np.array_equal(epochs[3], epoch_items(groups, 3, seed=0))
    singletons = [np.array([i]) for i in range(6)]
    assert np.array_equal(epoch_items(singletons, 2, 0), epoch_permutation(6, 2, 0))


def test_with_groups_the_validation_split_holds_out_whole_groups(tmp_path):
    """--val-fraction drawn record by record put relatives of every validation chain in training (50 clusters of
    4: all 10 held-out chains); with --groups whole groups are held out. Without, the split is as before."""

    class Records:
        def __init__(self, names):
            self.names = names

        def __len__(self):
            return len(self.names)

        def subset(self, index):
            return Records([self.names[i] for i in index])

    names = [f"c{c}_{m}" for c in range(50) for m in range(4)]
    (tmp_path / "groups.tsv").write_text("".join(f"{n}\t{n.split('_')[0]}\n" for n in names))
    data = Records(names)
    train, val = split_validation(data, 0.05, None, 0, read_groups(str(tmp_path / "groups.tsv"), names))
    held = {n.split("_")[0] for n in val.names}
    assert len(val) == 12 and len(held) == 3 and not held & {n.split("_")[0] for n in train.names}
    plain = split_validation(data, 0.05, None, 0)[1].names
    expected = sorted(np.random.default_rng([0, 0]).permutation(200)[:10].tolist())
    assert plain == [names[i] for i in expected]


def test_a_stream_encoded_by_ismtk_names_its_alphabet_and_disorder_token(tmp_path):
    from helpers import HOMOLOGS, SEARCH_DOMAINS
    from typer.testing import CliRunner

    from ismtk.cli import app
    from ismtk.tokenizers import load_tokenizer

    aa, tokens = tmp_path / "aa.fasta", tmp_path / "encoded.fasta"
    structure = SEARCH_DOMAINS / f"{HOMOLOGS[0]}.pdb.gz"
    args = ["encode", str(structure), "-o", str(tokens), "--aa-output", str(aa), "-t", "1"]
    assert CliRunner().invoke(app, args).exit_code == 0
    data = load_tune_data(aa, [parse_stream(str(tokens))])
    shipped = load_tokenizer("ism")
    star = shipped.alphabet.symbols[shipped.codebook.disorder_token]
    assert data.streams[0].alphabet == shipped.alphabet.symbols and data.streams[0].ignore == star
    assert any(shipped.identity in note for note in data.notes)
    assert data.streams[0].tokenizer == shipped.identity
    # named as structure-tune.md writes it: the alphabet comes from the name, the file's tag is kept
    named = load_tune_data(aa, [parse_stream(f"{tokens}:name=ism")]).streams[0]
    assert named.tokenizer == shipped.identity and named.ignore == star  # s* too (it was trained on as a target)
    # tokens read under another alphabet than their own (3Di letters are ISM symbols too) trained in silence
    other = dataclasses.replace(parse_stream(str(tokens)), alphabet=shipped.alphabet.symbols[::-1])
    with pytest.raises(InputError, match="its records are ism:.* tokens, but the stream encoded is given another"):
        load_tune_data(aa, [other])
    threedi = tmp_path / "encoded3di.fasta"
    assert CliRunner().invoke(app, ["encode", str(structure), "-o", str(threedi), "--tokenizer", "3di"]).exit_code == 0
    with pytest.raises(InputError, match="its records are 3di tokens, but the stream ism is given another alphabet"):
        load_tune_data(aa, [parse_stream(f"{threedi}:name=ism")])


@pytest.mark.parametrize("text", ["", ">a\n"])
def test_a_token_fasta_without_tokens_is_refused_naming_it(tmp_path, text):
    """An empty token FASTA (or one of empty records) was a 'max() arg is an empty sequence' traceback."""
    (tmp_path / "aa.fa").write_text(">a\nACDE\n")
    (tmp_path / "t.fa").write_text(text)
    with pytest.raises(InputError, match="t.fa: no token records"):
        load_tune_data(tmp_path / "aa.fa", [parse_stream(str(tmp_path / "t.fa"))])
