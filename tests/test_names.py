"""The one reader of name lists: comments, blank lines, fields, commas and the errors that name file and line."""

from __future__ import annotations

import pytest

from ismtk.errors import InputError
from ismtk.names import read_lines, read_names, read_rows
from ismtk.plm.tune import read_groups
from ismtk.search.pairs import read_pair_list


def test_comments_and_blank_lines_are_skipped_and_paths_keep_their_spaces(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("# header\n\n  my structures/1abc.pdb  \n\t# indented comment\nb.cif\n")
    assert read_lines(path) == [(3, "my structures/1abc.pdb"), (5, "b.cif")]
    assert read_names(path) == ["my", "b.cif"]


def test_rows_split_at_commas_only_when_asked_and_name_the_bad_line(tmp_path):
    path = tmp_path / "groups.txt"
    path.write_text("p1,g1\np2 g1\n")
    assert [row.fields for row in read_rows(path, "groups", 2, commas=True)] == [["p1", "g1"], ["p2", "g1"]]
    with pytest.raises(InputError, match=r"groups.txt: line 1: expected a record name and a group"):
        read_rows(path, "groups", 2, "a record name and a group")


def test_missing_and_empty_lists_are_errors_naming_the_file(tmp_path):
    with pytest.raises(InputError, match=r"missing.txt: cannot read pairs"):
        read_pair_list(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n\n")
    with pytest.raises(InputError, match=r"empty.txt: no names"):
        read_names(empty)
    assert read_rows(empty, "names", allow_empty=True) == []


def test_the_readers_of_ismtk_share_the_rules(tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("# candidates\na\tb\n\nc d extra\n")
    assert read_pair_list(pairs) == [("a", "b"), ("c", "d")]
    groups = tmp_path / "groups.csv"
    groups.write_text("# record,group\np0,g\np2,g\n")
    assert [g.tolist() for g in read_groups(str(groups), ["p0", "p1", "p2"])] == [[0, 2], [1]]
