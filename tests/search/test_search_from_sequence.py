"""``search --predictor``: sequence queries get predicted tokens and find their structures."""

from __future__ import annotations

from tiny_models import memorising_export
from typer.testing import CliRunner

from ismtk.cli import app
from ismtk.structure import find_structure_files, read_structure
from ismtk.tokenizers import ThreeDiTokenizer


def test_sequence_queries_find_their_own_structure_first(domains_dir, tmp_path):
    tokenizer = ThreeDiTokenizer()
    chains = [c for path in find_structure_files([domains_dir]) for c in read_structure(path).chains]
    records = [(c.name, c.sequence) for c in chains]
    targets = {c.name: tokenizer.to_string(c) for c in chains}
    # random-backbone features are not separable enough to memorise every real position: 90% is plenty
    export = memorising_export(
        tmp_path / "export", records, targets, tokenizer.alphabet.symbols, "3di", width=256, min_accuracy=0.9
    )
    fasta = tmp_path / "seqs.fasta"
    fasta.write_text("".join(f">{n}\n{s}\n" for n, s in records))
    runner = CliRunner()
    assert runner.invoke(app, ["createdb", str(domains_dir), str(tmp_path / "db")]).exit_code == 0
    out = tmp_path / "hits.m8"
    result = runner.invoke(
        app, ["search", str(fasta), str(tmp_path / "db"), "--predictor", str(export), "-o", str(out), "--exhaustive"]
    )
    assert result.exit_code == 0, result.output
    best: dict[str, tuple[float, str]] = {}
    for line in out.read_text().splitlines():
        cols = line.split("\t")
        query, target, bits = cols[0], cols[1], float(cols[-1])
        if query not in best or bits > best[query][0]:
            best[query] = (bits, target)
    assert {q: t for q, (_, t) in best.items()} == {n: n for n, _ in records}
