"""The autoencoder's optional pair loss over structurally aligned residues: data, gradient, training, DDP."""

import gzip
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_train_ae import DATA, MODEL, TRAIN, cli, params

from ismtk.autoencoder.codebook import Codebook
from ismtk.autoencoder.losses import pair_contrastive_loss, shared_token_logits
from ismtk.autoencoder.model import AtomicAutoencoder
from ismtk.autoencoder.pairs import load_pair_set
from ismtk.autoencoder.step import pair_backward, pair_evaluate, to_tensors
from ismtk.autoencoder.train import latest_checkpoint, train_autoencoder
from ismtk.errors import InputError
from ismtk.search.pairs import align_many, read_alignments, read_chains, write_alignments
from ismtk.sequence.alphabet import Alphabet
from ismtk.structure.microenv import microenvironments
from ismtk.structure.read import read_structure
from ismtk.tokenizers.threedi import ThreeDiTokenizer
from ismtk.train.metrics import read_metrics

NAMES = ("1BVN_l_u", "1ACB_l_u", "1D6R_l_u")


@pytest.fixture(scope="module")
def aligned(tmp_path_factory) -> tuple[Path, Path]:
    """Alignments (TM-align, plus each chain with itself) of three test chains, and a list of their files
    with one unreadable file among them."""
    folder = tmp_path_factory.mktemp("pairs")
    files = [DATA / "pdb" / f"{name}.pdb.gz" for name in NAMES]
    chains = read_chains(files)
    pairs = [(a, b) for i, a in enumerate(NAMES) for b in NAMES[i:]]
    write_alignments(folder / "train.aln", align_many(chains, pairs))
    listing = folder / "files.txt"
    listing.write_text("\n".join(map(str, [*files, DATA / "pdb" / "corrupt.pdb.gz"])) + "\n")
    return folder / "train.aln", listing


def test_pair_set_holds_every_close_pair_and_reports_unreadable_files(aligned):
    alignments, listing = aligned
    pairs = load_pair_set([listing], alignments, min_tm=0.0)
    assert pairs.alignments == 6 and any("corrupt.pdb.gz" in s for s in pairs.skipped)
    lengths = [len(read_structure(DATA / "pdb" / f"{n}.pdb.gz").chains[0]) for n in NAMES]
    assert len(pairs) >= sum(lengths)  # the self-alignments alone pair every residue with itself
    same = np.flatnonzero((pairs.chain1 == pairs.chain2) & (pairs.res1 == pairs.res2))
    batch = pairs.batch(same[:3])
    assert len(batch) == 6
    np.testing.assert_array_equal(batch.coords[:3], batch.coords[3:])  # a residue and itself
    chain = read_structure(DATA / "pdb" / f"{sorted(NAMES)[pairs.chain1[same[0]]]}.pdb.gz").chains[0]
    expected = microenvironments(chain, np.array([pairs.res1[same[0]]]))
    n = int(expected.mask.sum())
    np.testing.assert_array_equal(batch.coords[0, :n], expected.coords[0, :n])
    with pytest.raises(InputError, match="no alignment names two chains"):
        load_pair_set([DATA / "pdb" / "1AY7_l_u.pdb.gz"], alignments, min_tm=0.0)


def test_pairs_are_drawn_one_by_one_or_in_groups_of_one_alignment(aligned):
    alignments, listing = aligned
    pairs = load_pair_set([listing], alignments, min_tm=0.0)
    assert pairs.bounds[0] == 0 and pairs.bounds[-1] == len(pairs) and len(pairs.bounds) == pairs.alignments + 1
    one = pairs.draw(np.random.default_rng(5), 12)
    np.testing.assert_array_equal(one, np.random.default_rng(5).choice(len(pairs), 12, replace=False))
    grouped = pairs.draw(np.random.default_rng(5), 12, group=4)
    assert len(grouped) == 12
    which = np.searchsorted(pairs.bounds, grouped, side="right") - 1
    for g in which.reshape(3, 4):
        assert len(set(g)) == 1  # each group from one alignment ...
    for g in grouped.reshape(3, 4):
        assert len(set(g)) == 4  # ... without repeats where it has enough pairs
    # each pair with the partner of its own residue: the chains of the group are one alignment's two chains
    assert all(len(set(zip(pairs.chain1[g], pairs.chain2[g], strict=True))) == 1 for g in grouped.reshape(3, 4))


@pytest.fixture(scope="module")
def unrelated(aligned, tmp_path_factory) -> Path:
    """The test alignments without those that join the third chain to another: it is aligned to itself only,
    so it is related to neither of the other two."""
    alignments, _ = aligned
    path = tmp_path_factory.mktemp("unrelated") / "pairs.aln"
    join = [a for a in read_alignments(alignments) if NAMES[2] not in (a.name1, a.name2) or a.name1 == a.name2]
    write_alignments(path, join)
    return path


def test_hard_rivals_are_local_look_alikes_in_unrelated_chains(aligned, unrelated):
    alignments, listing = aligned
    pairs = load_pair_set([listing], unrelated, min_tm=0.0, rivals=True)
    names = sorted(NAMES)
    third = names.index(NAMES[2])
    expected = np.ones((3, 3), bool)
    expected[third] = expected[:, third] = False
    expected[third, third] = True
    np.testing.assert_array_equal(pairs.related, expected)
    for c, name in enumerate(names):
        chain = read_structure(DATA / "pdb" / f"{name}.pdb.gz").chains[0]
        np.testing.assert_array_equal(pairs.states[c], ThreeDiTokenizer().encode(chain))
    index = np.random.default_rng(2).choice(len(pairs), 40, replace=False)
    rivals = pairs.rivals(np.random.default_rng(3), index)
    assert rivals.shape == (40, 2)
    assert all(not pairs.related[pairs.chain1[p], c] for p, (c, _) in zip(index, rivals, strict=True))
    alike = [pairs.states[pairs.chain1[p]][pairs.res1[p]] == pairs.states[c][r]
             for p, (c, r) in zip(index, rivals, strict=True)]
    assert np.mean(alike) > 0.9  # all but anchors whose state the unrelated chains lack
    np.testing.assert_array_equal(rivals, pairs.rivals(np.random.default_rng(3), index))  # from the generator
    batch = pairs.batch(index[:2], rivals[:2])
    assert len(batch) == 6
    one = pairs.batch(index[:1], rivals[:1])  # its rival last, unpadded
    np.testing.assert_array_equal(batch.coords[4, : one.coords.shape[1]], one.coords[2])
    with pytest.raises(InputError, match="3 chain\\(s\\) aligned to every other chain"):
        load_pair_set([listing], alignments, min_tm=0.0, rivals=True)
    hub = alignments.with_name("hub.aln")  # the first chain aligned to both others, which are not aligned together
    write_alignments(hub, [a for a in read_alignments(alignments) if a.name1 == NAMES[0] != a.name2])
    with pytest.raises(InputError, match=f"1 chain\\(s\\) aligned to every other chain, .*e.g. {NAMES[0]}"):
        load_pair_set([listing], hub, min_tm=0.0, rivals=True)
    with pytest.raises(InputError, match="without hard rivals"):
        load_pair_set([listing], unrelated, min_tm=0.0).rivals(np.random.default_rng(0), index)


def test_a_chain_without_backbone_gets_rivals_of_its_own_state_instead_of_stopping_the_load(unrelated, tmp_path):
    """A CA-only copy of the unrelated chain: 3Di cannot encode it, so its residues share a state no 3Di residue has
    (and draw rivals of any state), and the pair set says so."""
    full = DATA / "pdb" / f"{NAMES[2]}.pdb.gz"
    ca_only = tmp_path / full.name
    with gzip.open(full, "rt") as src, gzip.open(ca_only, "wt") as dst:
        dst.writelines(line for line in src if not line.startswith("ATOM") or line[12:16] == " CA ")
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(str(DATA / "pdb" / f"{n}.pdb.gz") for n in NAMES[:2]) + f"\n{ca_only}\n")
    pairs = load_pair_set([listing], unrelated, min_tm=0.0, rivals=True)
    third = sorted(NAMES).index(NAMES[2])
    assert set(pairs.states[third]) == {20} and all(20 not in s for c, s in enumerate(pairs.states) if c != third)
    assert len(pairs.skipped) == 1 and NAMES[2] in pairs.skipped[0] and "3Di" in pairs.skipped[0]
    index = np.flatnonzero(pairs.chain1 == third)[:10]
    rivals = pairs.rivals(np.random.default_rng(0), index)
    assert len(index) == 10 and all(not pairs.related[third, c] for c, _ in rivals)


def test_rivals_join_the_candidates_of_both_directions():
    z = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    plain = pair_contrastive_loss(z, z + 0.1, temperature=1.0)
    far = pair_contrastive_loss(z, z + 0.1, temperature=1.0, rivals=torch.full((2, 2), 50.0))
    torch.testing.assert_close(far, plain)  # rivals nobody is near change nothing
    near = pair_contrastive_loss(z, z + 0.1, temperature=1.0, rivals=z[:1] + 0.1)
    logits = -torch.cdist(z, z + 0.1).pow(2)
    rival1, rival2 = -torch.cdist(z, z[:1] + 0.1).pow(2), -torch.cdist(z + 0.1, z[:1] + 0.1).pow(2)
    target = torch.arange(3)
    expected = 0.5 * (torch.nn.functional.cross_entropy(torch.cat([logits, rival1], 1), target)
                      + torch.nn.functional.cross_entropy(torch.cat([logits.T, rival2], 1), target))
    torch.testing.assert_close(near, expected)
    assert near > plain + 0.1  # a rival as near as the first pair's partner confuses it


def test_pair_loss_picks_partners_by_euclidean_distance():
    z = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    near = pair_contrastive_loss(z, z + 0.1, temperature=1.0)
    far = pair_contrastive_loss(z, z.flip(0), temperature=1.0)
    assert near < 0.05 < far
    other = torch.tensor([[0.5, 0.0], [2.0, 1.0], [1.0, 2.0]])
    logits = -torch.cdist(z, other).pow(2) / 2.0
    target = torch.arange(3)
    expected = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    torch.testing.assert_close(pair_contrastive_loss(z, other, temperature=2.0), expected)


def test_shared_token_logits_are_the_log_probability_of_drawing_the_same_token():
    gen = torch.Generator().manual_seed(0)
    a, b, c = torch.randn(4, 3, generator=gen), torch.randn(5, 3, generator=gen), torch.randn(6, 3, generator=gen)
    p_a = torch.softmax(-torch.cdist(a, c).pow(2) / 2.0, 1)
    p_b = torch.softmax(-torch.cdist(b, c).pow(2) / 2.0, 1)
    torch.testing.assert_close(shared_token_logits(a, b, c, 2.0), torch.log(p_a @ p_b.T))
    # cold: about log 1 where the nearest centroids agree, very unlikely where they differ
    cold = shared_token_logits(a, b, c, 1e-3)
    same = torch.cdist(a, c).argmin(1)[:, None] == torch.cdist(b, c).argmin(1)[None, :]
    assert same.any() and (~same).any()
    assert (cold[same] > -0.01).all() and (cold[~same] < -20).all()


def test_with_a_codebook_partners_are_picked_by_their_tokens():
    """Three residues near three different centroids: partners in the same cell are told apart from the others
    however far they lie from their own residue; partners in swapped cells are not."""
    c = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    z = c + 0.3
    same_cell = pair_contrastive_loss(z, c - 0.3, temperature=1.0, centroids=c)
    swapped = pair_contrastive_loss(z, (c - 0.3).flip(0), temperature=1.0, centroids=c)
    assert same_cell < 0.05 < swapped
    # the plain loss, by distance, is not blind to the offset within the cell as the token loss is
    assert pair_contrastive_loss(z, c - 0.3, temperature=1.0) > same_cell
    rival = pair_contrastive_loss(z, c - 0.3, temperature=1.0, rivals=c[:1] + 1.0, centroids=c)
    assert rival > same_cell + 0.1  # a rival in the first residue's cell confuses it


@pytest.mark.parametrize("workers", [1, 3])
def test_pair_backward_gives_the_gradient_of_the_whole_batch(aligned, workers):
    """Embeddings in size-sorted parts (on threads), loss over all, gradient part by part == one pass."""
    alignments, listing = aligned
    pairs = load_pair_set([listing], alignments, min_tm=0.0)
    batch = pairs.batch(np.random.default_rng(0).choice(len(pairs), 12, replace=False))
    torch.manual_seed(0)
    model = AtomicAutoencoder(MODEL)
    x = to_tensors(batch, torch.device("cpu"))
    z = model.encode(x["coords"], x["elements"], x["mask"])
    (0.5 * pair_contrastive_loss(z[:12], z[12:], 8.0)).backward()
    expected = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    loss, accuracy = pair_backward(model, batch, 0.5, 8.0, 2_000, torch.device("cpu"), workers=workers)
    assert loss == pytest.approx(float(pair_contrastive_loss(z[:12], z[12:], 8.0).detach()), rel=1e-5)
    assert 0.0 <= float(accuracy) <= 1.0
    got = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    assert set(got) == set(expected)
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-4, atol=1e-6, msg=k)


def test_pair_evaluate_scores_each_batch_as_the_pair_loss_does(aligned):
    alignments, listing = aligned
    pairs = load_pair_set([listing], alignments, min_tm=0.0)
    rng = np.random.default_rng(1)
    batches = [pairs.batch(rng.choice(len(pairs), n, replace=False)) for n in (5, 9)]
    torch.manual_seed(0)
    model = AtomicAutoencoder(MODEL).eval()
    losses, hits = [], []
    with torch.no_grad():
        for batch in batches:
            x = to_tensors(batch, torch.device("cpu"))
            z = model.encode(x["coords"], x["elements"], x["mask"])
            n = len(z) // 2
            losses.append(n * float(pair_contrastive_loss(z[:n], z[n:], 8.0)))
            hits.append(int((torch.cdist(z[:n], z[n:]).argmin(1) == torch.arange(n)).sum()))
    sums = pair_evaluate(model.train(), batches, 8.0, 2_000, torch.device("cpu"), workers=2)
    assert model.training  # left as it was
    assert float(sums["pairs"]) == 14
    assert float(sums["pair"]) == pytest.approx(sum(losses), rel=1e-5)
    assert float(sums["pair_acc"]) == pytest.approx(sum(hits))


def test_held_out_pairs_are_scored_at_each_validation_and_can_pick_the_best_model(aligned, tmp_path):
    """A plain run (no pair loss) scored on held-out alignments; best/ follows the held-out pair accuracy."""
    alignments, listing = aligned
    cfg = replace(TRAIN, pair_val_alignments=str(alignments), pair_structures=str(listing), pair_batch=6,
                  pair_min_tm=0.0, best_metric="pair_acc", max_steps=4)  # fmt: skip
    messages = []
    train_autoencoder([DATA], tmp_path / "run", MODEL, cfg, device="cpu", threads=2, log=messages.append)
    assert any(m.startswith("pair validation: ") and "of 6 held-out alignments, in batches of 6" in m for m in messages)
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert not any("pair" in r for r in records if r["kind"] == "train")
    val = [r for r in records if r["kind"] == "val"]
    assert val and all(r["pair"] > 0 and 0 <= r["pair_acc"] <= 1 for r in val)
    best = json.loads((tmp_path / "run" / "best" / "best.json").read_text())
    assert best["metric"] == "pair_acc" and best["value"] == max(r["pair_acc"] for r in val)
    with pytest.raises(InputError, match="--best-metric pair_acc needs --pair-val-alignments"):
        replace(cfg, pair_val_alignments=None)


def test_training_with_pairs_logs_the_loss_and_resumes_exactly(aligned, tmp_path):
    alignments, listing = aligned
    cfg = replace(TRAIN, pair_alignments=str(alignments), pair_structures=str(listing), pair_batch=6, pair_min_tm=0.0,
                  pair_group=3)  # fmt: skip
    whole, part = tmp_path / "whole", tmp_path / "part"
    messages = []
    train_autoencoder([DATA], whole, MODEL, replace(cfg, max_steps=4), device="cpu", threads=2, log=messages.append)
    assert any(m.startswith("pair loss: ") and "of 6 alignments" in m and "(3 from each alignment drawn)" in m
               and "corrupt" in m for m in messages)  # fmt: skip
    records = [r for r in read_metrics(whole / "metrics.jsonl") if r["kind"] == "train"]
    assert all(r["pair"] > 0 and 0 <= r["pair_acc"] <= 1 for r in records)
    train_autoencoder([DATA], part, MODEL, replace(cfg, max_steps=2), device="cpu", threads=2)
    assert latest_checkpoint(part).name == "step_0000002.pt"
    train_autoencoder([DATA], part, MODEL, replace(cfg, max_steps=4), device="cpu", threads=2, resume=True)
    a, b = params(whole), params(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the pair loss changes the training: same run without it ends elsewhere
    plain = tmp_path / "plain"
    train_autoencoder([DATA], plain, MODEL, replace(TRAIN, max_steps=4), device="cpu", threads=2)
    assert not all(torch.equal(a[k], params(plain)[k]) for k in a)
    with pytest.raises(InputError, match="needs --pair-structures"):
        train_autoencoder([DATA], tmp_path / "x", MODEL, replace(cfg, pair_structures=None), device="cpu")
    with pytest.raises(InputError, match="--pair-batch 6 must be a multiple of --pair-group 4"):
        train_autoencoder([DATA], tmp_path / "y", MODEL, replace(cfg, pair_group=4), device="cpu")


def test_training_with_hard_rivals_resumes_exactly(aligned, unrelated, tmp_path):
    _, listing = aligned
    cfg = replace(TRAIN, pair_alignments=str(unrelated), pair_structures=str(listing), pair_batch=6, pair_min_tm=0.0,
                  pair_rivals=True)  # fmt: skip
    whole, part = tmp_path / "whole", tmp_path / "part"
    messages = []
    train_autoencoder([DATA], whole, MODEL, replace(cfg, max_steps=4), device="cpu", threads=2, log=messages.append)
    assert any(m.startswith("pair loss: ") and "and as many hard rivals" in m for m in messages)
    assert all(r["pair"] > 0 for r in read_metrics(whole / "metrics.jsonl") if r["kind"] == "train")
    train_autoencoder([DATA], part, MODEL, replace(cfg, max_steps=2), device="cpu", threads=2)
    train_autoencoder([DATA], part, MODEL, replace(cfg, max_steps=4), device="cpu", threads=2, resume=True)
    a, b = params(whole), params(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    without = tmp_path / "without"
    train_autoencoder([DATA], without, MODEL, replace(cfg, pair_rivals=False, max_steps=4), device="cpu", threads=2)
    assert not all(torch.equal(a[k], params(without)[k]) for k in a)


def test_training_with_a_codebook_scores_pairs_by_their_tokens_and_resumes_exactly(aligned, tmp_path):
    alignments, listing = aligned
    book = tmp_path / "codebook.json"
    centroids = np.random.default_rng(0).normal(size=(8, MODEL.width)).astype(np.float32)
    Codebook(centroids, Alphabet("ACDEFGHI"), None, "0" * 64).save(book)
    cfg = replace(TRAIN, pair_alignments=str(alignments), pair_structures=str(listing), pair_batch=6, pair_min_tm=0.0,
                  pair_codebook=str(book), pair_temperature=2.0, pair_val_alignments=str(alignments))  # fmt: skip
    whole, part, plain = tmp_path / "whole", tmp_path / "part", tmp_path / "plain"
    train_autoencoder([DATA], whole, MODEL, replace(cfg, max_steps=4), device="cpu", threads=2)
    records = read_metrics(whole / "metrics.jsonl")
    assert all(r["pair"] > 0 for r in records if r["kind"] in ("train", "val"))
    train_autoencoder([DATA], part, MODEL, replace(cfg, max_steps=2), device="cpu", threads=2)
    train_autoencoder([DATA], part, MODEL, replace(cfg, max_steps=4), device="cpu", threads=2, resume=True)
    a, b = params(whole), params(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    train_autoencoder([DATA], plain, MODEL, replace(cfg, pair_codebook=None, max_steps=4), device="cpu", threads=2)
    assert not all(torch.equal(a[k], params(plain)[k]) for k in a)
    Codebook(centroids[:, :4], Alphabet("ACDEFGHI"), None, "0" * 64).save(book)
    with pytest.raises(InputError, match="centroids of 4 dimensions, the model's embeddings have"):
        train_autoencoder([DATA], tmp_path / "x", MODEL, cfg, device="cpu")


@pytest.mark.parametrize("rivals", [False, True])
def test_two_gloo_processes_with_pairs_equal_one_process(aligned, unrelated, tmp_path, rivals):
    """The pair loss over the global batch: each rank's embeddings (and rivals) gathered, gradients averaged by
    DDP."""
    alignments, listing = aligned
    files = tmp_path / "files.txt"
    shutil.copy(listing, files)
    options = ["--pair-alignments", str(unrelated if rivals else alignments), "--pair-structures", str(files)]
    options += ["--pair-batch", "6", "--pair-min-tm", "0"] + (["--pair-rivals"] if rivals else [])
    one, two = tmp_path / "one", tmp_path / "two"
    done = cli("-o", str(one), *options)
    assert done.returncode == 0, done.stderr
    assert "pair loss: " in done.stderr
    done = cli("-o", str(two), "--nproc", "2", *options)
    assert done.returncode == 0, done.stderr
    a, b = params(one), params(two)
    for k in a:  # the key biases' gradient is 0 but for rounding, which Adam scales up to steps of ~lr
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-4 if k.endswith("qkv.bias") else 1e-5, msg=k)
    odd = cli("-o", str(tmp_path / "odd"), "--nproc", "4", *options)
    assert odd.returncode != 0 and "--pair-batch 6 must be a multiple of the number of processes (4)" in odd.stderr


def test_a_pair_run_does_not_depend_on_the_thread_count(aligned, tmp_path):
    """Micro-batches (several per step here) are summed in part order on one thread as on two; on one thread
    the pair loss's parts went through one backward call, whose order differed by float noise (1e-5 in 4 steps)."""
    alignments, listing = aligned
    cfg = replace(TRAIN, pair_alignments=str(alignments), pair_structures=str(listing), pair_batch=6, pair_min_tm=0.0,
                  max_steps=3, micro_batch_pairs=5000)  # fmt: skip
    for threads in (1, 2):
        train_autoencoder([DATA], tmp_path / str(threads), MODEL, cfg, device="cpu", threads=threads)
    a, b = params(tmp_path / "1"), params(tmp_path / "2")
    assert all(torch.equal(a[k], b[k]) for k in a)
