"""k-means codebooks: fast paths against exact brute force, recovery of known clusters, file round trip."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from ismtk.autoencoder.codebook import (
    ELBOW_KS,
    Codebook,
    _nearest,
    aligned_pair_metric,
    assign,
    choose_k,
    disorder_token,
    elbow,
    kmeans,
)
from ismtk.errors import InputError
from ismtk.tokenizers import Alphabet


def blobs(n_per: int, centres: np.ndarray, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(centres)), n_per)
    return (centres[labels] + rng.normal(0, spread, (len(labels), centres.shape[1]))).astype(np.float32), labels


def test_blocked_nearest_equals_brute_force():
    rng = np.random.default_rng(0)
    x, c = rng.normal(size=(70_000, 16)).astype(np.float32), rng.normal(size=(37, 16)).astype(np.float32)
    exact = ((x[:, None, :].astype(np.float64) - c[None].astype(np.float64)) ** 2).sum(-1)
    labels, dist = _nearest(torch.from_numpy(x), torch.from_numpy(c))
    np.testing.assert_array_equal(labels.numpy(), exact.argmin(1))
    np.testing.assert_allclose(dist.numpy(), exact.min(1), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(assign(x, c), exact.argmin(1))


@pytest.mark.parametrize("batch_size", [None, 256])
def test_kmeans_recovers_separated_clusters(batch_size):
    centres = np.random.default_rng(1).normal(0, 10, (6, 8))
    x, truth = blobs(300, centres, 0.5, seed=2)
    result = kmeans(x, 6, seed=0, batch_size=batch_size)
    pairs = set(zip(truth.tolist(), result.labels.tolist(), strict=True))
    assert len(pairs) == 6  # a one-to-one map between true and found clusters
    expected_inertia = ((x - centres[truth]) ** 2).sum()
    assert result.inertia == pytest.approx(expected_inertia, rel=0.02)


def test_kmeans_is_deterministic_and_restarts_help():
    x = np.random.default_rng(3).normal(size=(2000, 4)).astype(np.float32)
    a, b = kmeans(x, 10, seed=5, n_init=1), kmeans(x, 10, seed=5, n_init=1)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert kmeans(x, 10, seed=5, n_init=4).inertia <= a.inertia + 1e-6
    with pytest.raises(InputError, match="N >= K"):
        kmeans(x[:5], 10)


def test_elbow_finds_the_number_of_clusters():
    centres = np.random.default_rng(4).normal(0, 8, (5, 6))
    x, _ = blobs(200, centres, 0.6, seed=5)
    ks = list(range(1, 13))
    inertias = elbow(x, ks, n_init=2)
    assert all(a >= b - 1e-3 * a for a, b in itertools.pairwise(inertias))
    assert choose_k(ks, inertias) == 5


def test_disorder_token_is_the_sparsest_cluster():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    n_atoms = np.array([90, 100, 12, 20, 60, 70, 65])
    assert disorder_token(labels, n_atoms, k=4) == 1


def test_codebook_round_trip(tmp_path):
    centroids = np.random.default_rng(6).normal(size=(64, 32)).astype(np.float32)
    book = Codebook(centroids, Alphabet.of_size(64), disorder_token=17, encoder_sha256="ab" * 32)
    book.save(tmp_path / "codebook.json")
    loaded = Codebook.load(tmp_path / "codebook.json")
    np.testing.assert_array_equal(loaded.centroids, centroids)
    assert (loaded.alphabet, loaded.disorder_token, loaded.encoder_sha256) == (book.alphabet, 17, "ab" * 32)
    z = centroids[[3, 17, 63]] + 1e-3
    np.testing.assert_array_equal(loaded.assign(z), [3, 17, 63])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="not an ismtk codebook"):
        Codebook.load(tmp_path / "bad.json")


def test_aligned_pair_metric_keeps_the_directions_in_which_aligned_residues_agree():
    rng = np.random.default_rng(7)
    z = rng.normal(size=(5000, 4)) * [3.0, 3.0, 1.0, 1.0]  # most variance in directions 0 and 1
    first = rng.normal(size=(4000, 4)) * [3.0, 3.0, 1.0, 1.0]
    second = first + rng.normal(size=first.shape) * [4.0, 4.0, 0.1, 0.1]  # ... where aligned pairs disagree
    metric = aligned_pair_metric(first, second, z, dims=2)
    assert metric.shape == (4, 2)
    weight = np.abs(metric) / np.abs(metric).sum(0)
    assert (weight[2:].sum(0) > 0.95).all()  # both kept directions lie in the agreeing subspace
    with pytest.raises(InputError, match="identical embeddings"):
        aligned_pair_metric(first, first, z, dims=2)
    with pytest.raises(InputError, match="out of range"):
        aligned_pair_metric(first, second, z, dims=5)


def test_codebook_with_a_metric_assigns_in_it_and_round_trips(tmp_path):
    rng = np.random.default_rng(8)
    centroids = rng.normal(size=(16, 4)).astype(np.float32)
    metric = rng.normal(size=(4, 2)) * [[5.0], [1.0], [0.5], [0.1]]
    z = rng.normal(size=(300, 4))
    expected = assign(z @ metric, centroids.astype(np.float64) @ metric)
    assert (expected != assign(z, centroids)).any()  # the metric matters here
    book = Codebook(centroids, Alphabet.of_size(16), disorder_token=2, encoder_sha256="cd" * 32, metric=metric)
    np.testing.assert_array_equal(book.assign(z), expected)
    book.save(tmp_path / "codebook.json")
    doc = json.loads((tmp_path / "codebook.json").read_text())
    assert doc["format"] == "ismtk-codebook/2" and np.array(doc["metric"]).shape == (4, 2)
    loaded = Codebook.load(tmp_path / "codebook.json")
    np.testing.assert_array_equal(loaded.metric, metric)
    np.testing.assert_array_equal(loaded.assign(z), expected)
    doc["format"] = "ismtk-codebook/9"
    (tmp_path / "new.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="newer than this ismtk"):
        Codebook.load(tmp_path / "new.json")


def test_residual_codebook_quantises_what_the_base_token_leaves_and_round_trips(tmp_path):
    rng = np.random.default_rng(9)
    base_c = rng.normal(0, 5, size=(8, 4)).astype(np.float32)
    res_c = rng.normal(0, 1, size=(5, 4)).astype(np.float32)
    base = Codebook(base_c, Alphabet.of_size(8), disorder_token=1, encoder_sha256="ef" * 32)
    book = Codebook(res_c, Alphabet.of_size(5), disorder_token=None, encoder_sha256="ef" * 32, base=base)
    z = rng.normal(0, 5, size=(400, 4))
    first = assign(z, base_c)
    second = assign(z - base_c[first], res_c)
    np.testing.assert_array_equal(book.assign(z), second)
    np.testing.assert_allclose(book.quantised(z), base_c[first] + res_c[second], rtol=1e-6)
    np.testing.assert_allclose(base.quantised(z), base_c[first], rtol=1e-6)
    book.save(tmp_path / "codebook.json")
    assert json.loads((tmp_path / "codebook.json").read_text())["format"] == "ismtk-codebook/3"
    loaded = Codebook.load(tmp_path / "codebook.json")
    np.testing.assert_array_equal(loaded.base.centroids, base_c)
    np.testing.assert_array_equal(loaded.assign(z), second)
    metric = Codebook(base_c, Alphabet.of_size(8), 1, "ef" * 32, metric=np.eye(4)[:, :2])
    with pytest.raises(InputError, match="refines a plain codebook"):
        Codebook(res_c, Alphabet.of_size(5), None, "ef" * 32, base=metric)
    with pytest.raises(InputError, match="refines a plain codebook"):
        Codebook(res_c, Alphabet.of_size(5), None, "ef" * 32, base=book)


def test_residue_sample_is_a_subset_of_all_embeddings_in_order(ism_folder):
    from ismtk.autoencoder.codebook import residue_embeddings

    model, structs = ism_folder / "ae", [ism_folder / "structs"]
    every, atoms, _ = residue_embeddings(model, structs, 10**9, seed=3)
    some, some_atoms, _ = residue_embeddings(model, structs, 200, seed=3)
    assert len(some) == 200 < len(every)
    # each drawn residue's embedding is exactly its embedding among all (chains are embedded whole), in order
    rows = [int(np.flatnonzero((every == z).all(axis=1))[0]) for z in some]
    assert rows == sorted(set(rows)) and np.array_equal(atoms[rows], some_atoms)
    assert np.array_equal(residue_embeddings(model, structs, 200, seed=3)[0], some)
    assert not np.array_equal(residue_embeddings(model, structs, 200, seed=4)[0], some)


def test_cluster_stops_on_an_unused_table_marking_benchmark_homologs_unless_kept(ism_folder, tmp_path):
    """A codebook is a token vocabulary: the benchmark rules hold for it as for training."""
    import shutil

    from typer.testing import CliRunner

    from ismtk.cli import app

    data = tmp_path / "data"
    shutil.copytree(ism_folder / "structs", data / "pdb")
    first, *_ = sorted(p.name for p in (data / "pdb").iterdir())
    (data / "classification.tsv").write_text(f"domain_id\tfile\tts50_homolog\nx\tpdb/{first}\t1\n")
    args = ["cluster", str(ism_folder / "ae"), str(data / "pdb"), "-o", str(tmp_path / "tok"), "-k", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "classification.tsv marks 1 of the input files" in result.output
    result = CliRunner().invoke(app, [*args, "--keep-ts50-homologs"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"k": 63}, "centroids of shape"),
        ({"alphabet": "ABC"}, "an alphabet of 3 symbols"),
        ({"disorder_token": 64}, "disorder_token 64"),
        ({"centroids": "nan"}, "finite"),
        ({"metric": [[1.0]] * 5}, "metric must be"),
    ],
)
def test_a_damaged_codebook_is_refused_naming_what_is_wrong(tmp_path, change, message):
    """A NaN centroid would win every assignment in silence; wrong shapes would fail file by file later."""
    centroids = np.random.default_rng(6).normal(size=(64, 8)).astype(np.float32)
    doc = Codebook(centroids, Alphabet.of_size(64), 3, "ab" * 32).to_dict()
    if change.get("centroids") == "nan":
        doc["centroids"][5][0] = float("nan")
    else:
        doc.update(change)
    (tmp_path / "codebook.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=f"codebook.json: .*{message}"):
        Codebook.load(tmp_path / "codebook.json")


def test_kmeans_refuses_nan_rows():
    x = np.zeros((10, 2), np.float32)
    x[3, 1] = np.nan
    with pytest.raises(InputError, match="1 of 10 rows"):
        kmeans(x, 2)


def test_a_codebook_of_another_width_than_its_encoder_is_refused_at_load(ism_folder, tmp_path):
    import shutil

    from ismtk.tokenizers.ism import IsmTokenizer

    folder = tmp_path / "tok"
    shutil.copytree(ism_folder / "tok", folder)
    doc = json.loads((folder / "codebook.json").read_text())
    doc["centroids"] = [row + row for row in doc["centroids"]]
    doc["dim"] *= 2
    (folder / "codebook.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="centroids of width 32, but the encoder embeds in 16"):
        IsmTokenizer(folder)


def test_cluster_refuses_k_beyond_the_alphabet_before_any_work_and_too_few_residues_for_an_elbow(ism_folder, tmp_path):
    from ismtk.autoencoder.codebook import build_codebook

    with pytest.raises(InputError, match="-k 100"):
        build_codebook(ism_folder / "ae", [tmp_path / "nothing-read"], tmp_path / "out", k=100)
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="too few to choose K"):
        build_codebook(ism_folder / "ae", [ism_folder / "structs"], tmp_path / "out", k=None, max_points=10)


def test_auto_k_and_its_curve_stay_within_the_alphabet(ism_folder):
    """The elbow is taken among K a 64-symbol alphabet holds; the curve went on to 128 (k-means runs for K that
    could not be used, and a plotted elbow that was not the one chosen)."""
    tsv = (ism_folder / "tok" / "elbow.tsv").read_text().split()[2::2]
    assert [int(k) for k in tsv] == [k for k in ELBOW_KS if k <= 64] == list(ELBOW_KS)
