"""The autoencoder model: invariance, Kabsch loss, overfitting a batch, inference API."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ismtk.autoencoder.geometry import kabsch_superpose
from ismtk.autoencoder.grow import can_grow, grow_autoencoder
from ismtk.autoencoder.io import embed_chains, load_autoencoder, save_autoencoder
from ismtk.autoencoder.kernels import fused_attention_biases
from ismtk.autoencoder.losses import aligned_msd, autoencoder_losses
from ismtk.autoencoder.model import MASK_TOKEN, AtomicAutoencoder, AutoencoderConfig
from ismtk.errors import InputError
from ismtk.structure import read_structure
from ismtk.structure.microenv import microenvironments

DATA = Path(__file__).parent / "data" / "ae" / "pdb"
TINY = AutoencoderConfig(width=32, heads=4, layers=2, decoder_layers=1, pair_atoms=16, pair_dim=16)


@pytest.fixture(scope="module")
def chain():
    return read_structure(DATA / "1ACB_l_u.pdb.gz").chains[0]


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def tensors(envs):
    return torch.from_numpy(envs.coords), torch.from_numpy(envs.elements), torch.from_numpy(envs.mask)


@pytest.mark.parametrize("kernel", ["fixed", "learned"])
def test_encoder_invariant_to_rotation_and_translation(chain, kernel):
    torch.manual_seed(0)
    model = AtomicAutoencoder(AutoencoderConfig(width=32, heads=4, layers=2, kernel=kernel)).eval()
    envs = microenvironments(chain, np.arange(24))
    coords, elements, mask = tensors(envs)
    rot = torch.from_numpy(random_rotation(1)).float()
    moved = (coords @ rot.T + torch.tensor([3.0, -7.0, 11.0])) * mask[..., None]
    with torch.no_grad():
        z = model.encode(coords, elements, mask)
        # translation of the microenvironment as a whole moves the C-alpha too: inputs stay CA-relative
        z_rot = model.encode(coords @ rot.T, elements, mask)
        assert torch.allclose(z, z_rot, atol=1e-5)
        assert not torch.allclose(z, model.encode(moved, elements, mask), atol=1e-3)  # geometry matters
    # the whole pipeline from a moved chain: same embeddings
    moved_chain = replace(chain, coords=(chain.coords @ random_rotation(2).T + [40.0, -5.0, 2.0]).astype(np.float32))
    a, b = embed_chains(model, [chain, moved_chain])
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_kabsch_loss_is_zero_for_rotated_copy():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, 3, generator=gen) * 5
    mask = torch.ones(3, 20, dtype=torch.bool)
    mask[1, 12:] = False
    rot = torch.from_numpy(random_rotation(3)).float()
    target = x @ rot.T + torch.tensor([1.0, 2.0, -3.0])
    assert aligned_msd(x, target, mask).max() < 1e-8
    assert torch.allclose(kabsch_superpose(target, x, mask)[mask], x[mask], atol=1e-4)
    # a reflection cannot be undone by a rotation
    mirrored = x * torch.tensor([1.0, 1.0, -1.0])
    assert aligned_msd(x, mirrored, mask).min() > 0.1


def test_tiny_model_overfits_a_batch(chain):
    torch.manual_seed(0)
    envs = microenvironments(chain, np.arange(0, 70, 7))
    coords, elements, mask = tensors(envs)
    aa = torch.from_numpy(envs.aa)
    model = AtomicAutoencoder(TINY)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = None
    for _ in range(120):
        losses, sums = autoencoder_losses(model(coords, elements, mask), coords, mask, aa, TINY)
        first = first or {k: v.item() for k, v in losses.items()}
        loss = losses["aa"] + losses["disto"] + 0.05 * (losses["aligned_mse"] + losses["distances"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert sums["aa_correct"] >= sums["aa_total"] - 1
    assert losses["aa"].item() < 0.25 * first["aa"]
    assert losses["disto"].item() < 0.9 * first["disto"]
    assert losses["distances"].item() < 0.5 * first["distances"]
    assert losses["aligned_mse"].item() < 0.5 * first["aligned_mse"]


def test_model_overfits_one_microenvironment(chain):
    """The paper's decoder (encoder atom features + z) can reconstruct an environment's coordinates."""
    torch.manual_seed(0)
    envs = microenvironments(chain, np.array([30]))
    coords, elements, mask = tensors(envs)
    aa = torch.from_numpy(envs.aa)
    model = AtomicAutoencoder(TINY)
    assert TINY.decoder_input == "atoms"
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        losses, sums = autoencoder_losses(model(coords, elements, mask), coords, mask, aa, TINY)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    assert (sums["rmsd"] / sums["envs"]).item() < 0.5


def test_configs_without_decoder_input_are_the_old_decoder():
    legacy = json.loads(TINY.to_json())
    del legacy["decoder_input"]
    assert AutoencoderConfig.from_dict(legacy).decoder_input == "embedding"
    assert AutoencoderConfig.from_dict(json.loads(TINY.to_json())) == TINY
    old = AtomicAutoencoder(replace(TINY, decoder_input="embedding"))
    assert {"dec_element.weight", "dec_rank.weight"} <= set(old.state_dict())
    assert not {"dec_element.weight", "dec_rank.weight"} & set(AtomicAutoencoder(TINY).state_dict())
    with pytest.raises(InputError, match="decoder input"):
        AutoencoderConfig(decoder_input="z")


def test_distance_bias_table_gradient_is_float32_under_bf16_autocast(chain):
    """The bias table's gradient sums millions of pair gradients: under bf16 autocast it must stay fp32."""
    torch.manual_seed(0)
    model = AtomicAutoencoder(replace(TINY, decoder_layers=1))
    coords, elements, mask = tensors(microenvironments(chain, np.arange(0, 70, 2)))

    def grad(autocast: bool) -> torch.Tensor:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            z = model.encode(coords, elements, mask)
        z.float().square().sum().backward()
        return model.bias.proj[1].weight.grad.clone()

    exact, mixed = grad(False), grad(True)
    assert (mixed - exact).norm() / exact.norm() < 0.05
    with torch.autocast("cpu", dtype=torch.bfloat16):
        biases = model.bias(torch.rand(2, 5, 5) * 10, torch.zeros(2, 5, dtype=torch.int64))
    assert all(b.dtype == torch.float32 for pair in biases for b in pair)


def node_inputs(envs):
    coords, elements, mask = tensors(envs)
    b = len(coords)
    pos = torch.cat([torch.zeros(b, 1, 3), coords], 1)
    tokens = torch.cat([torch.full((b, 1), MASK_TOKEN), elements], 1)
    return pos, tokens, torch.cat([torch.ones(b, 1, dtype=torch.bool), mask], 1)


def test_fused_cpu_biases_equal_the_torch_path(chain):
    """The numba pass gives the gathers' biases and masks, and the same table gradient on any thread count; the
    gathers' biases (the path on a GPU) are contiguous along keys."""
    torch.manual_seed(0)
    model = AtomicAutoencoder(TINY)
    pos, tokens, valid = node_inputs(microenvironments(chain, np.arange(0, 70, 3)))
    weights = [torch.randn(len(pos), TINY.heads, pos.shape[1], pos.shape[1]) for _ in range(2 * TINY.layers)]

    def run(fused: bool, threads: int):
        torch.set_num_threads(threads)
        model.zero_grad()
        biases = [b for pair in model.bias.attention_biases(pos, tokens, valid, fused=fused) for b in pair]
        sum((b.masked_fill(b.isinf(), 0) * w).sum() for b, w in zip(biases, weights, strict=True)).backward()
        grads = [p.grad.clone() for p in model.bias.parameters()]
        return [b.detach() for b in biases], grads

    def table_grad(threads: int) -> torch.Tensor:
        torch.set_num_threads(threads)
        table = torch.randn(900, 2 * TINY.layers * TINY.heads, generator=torch.Generator().manual_seed(1))
        table.requires_grad_()
        biases = fused_attention_biases(table, pos, valid, 0.02, TINY.local_radius, TINY.heads)
        sum((b.masked_fill(b.isinf(), 0) * w).sum() for b, w in zip(biases, weights, strict=True)).backward()
        return table.grad

    previous = torch.get_num_threads()
    try:
        (reference, exact), (fused, grads) = run(False, 2), run(True, 2)
        assert torch.equal(table_grad(1), table_grad(2))
    finally:
        torch.set_num_threads(previous)
    assert all(b.stride(-1) == 1 for b in reference)  # CUDA's fused SDPA kernels take no other bias layout
    for a, b in zip(reference, fused, strict=True):
        assert torch.equal(a.isinf(), b.isinf()) and a.isinf().any()
        torch.testing.assert_close(a.masked_fill(a.isinf(), 0), b.masked_fill(b.isinf(), 0), atol=2e-5, rtol=1e-5)
    for a, b in zip(exact, grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_attention_with_a_trainable_bias_equals_sdpa():
    from ismtk.autoencoder.model import _Attention

    torch.manual_seed(0)
    attention = _Attention(32, 4)
    x = torch.randn(3, 9, 32)
    bias = torch.randn(3, 4, 9, 9).masked_fill(torch.rand(3, 1, 1, 9) < 0.3, float("-inf"))
    bias[..., 0] = 0.0  # every row sees a node
    mine = attention(x, bias.requires_grad_())
    with torch.no_grad():
        torch.testing.assert_close(mine, attention(x, bias.detach()), atol=1e-5, rtol=1e-5)


def test_micro_batches_give_the_batch_gradient(chain):
    from ismtk.autoencoder.losses import LOSS_NAMES
    from ismtk.autoencoder.step import forward_backward, micro_batches

    envs = microenvironments(chain, np.arange(0, 70, 2))
    parts = micro_batches(envs, 20_000)
    assert len(parts) > 2 and sorted(np.concatenate([p.aa for p in parts])) == sorted(envs.aa)
    assert all(len(p) * (p.mask.shape[1] + 1) ** 2 <= 20_000 or len(p) == 1 for p in parts)
    torch.manual_seed(0)
    model = AtomicAutoencoder(TINY)
    weights = dict.fromkeys(LOSS_NAMES, 1.0)
    grads, losses = [], []
    for split in ([envs], parts):
        model.zero_grad()
        losses.append(forward_backward(model, TINY, split, weights, len(envs), torch.device("cpu")))
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(losses[0], losses[1], atol=1e-4, rtol=1e-5)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_empty_batch_encodes_to_nothing():
    model = AtomicAutoencoder(TINY).eval()
    with torch.no_grad():
        z = model.encode(
            torch.zeros(0, 0, 3), torch.zeros(0, 0, dtype=torch.int64), torch.zeros(0, 0, dtype=torch.bool)
        )
    assert z.shape == (0, TINY.width)


def test_save_load_embed_roundtrip(tmp_path, chain):
    torch.manual_seed(0)
    model = AtomicAutoencoder(TINY).eval()
    save_autoencoder(model, tmp_path)
    loaded = load_autoencoder(tmp_path)
    short = read_structure(DATA / "1D6R_l_u.pdb.gz").chains[0]
    out = embed_chains(loaded, [chain, short], batch_size=7)
    assert [o.shape for o in out] == [(len(chain), 32), (len(short), 32)]
    assert all(o.dtype == np.float32 for o in out)
    again = embed_chains(model, [short, chain], batch_size=64)
    np.testing.assert_allclose(out[0], again[1], atol=1e-5)
    np.testing.assert_allclose(out[1], again[0], atol=1e-5)
    with torch.no_grad():
        direct = model.encode(*tensors(microenvironments(short))).numpy()
    np.testing.assert_allclose(out[1], direct, atol=1e-5)


def test_a_model_s_radius_is_saved_and_used_to_embed(tmp_path):
    """A model trained on 10 A microenvironments keeps its radius in model.json and embeds 10 A ones; a
    model.json written before the option existed means ISM's 8 A."""
    torch.manual_seed(0)
    wide = AtomicAutoencoder(replace(TINY, radius=10.0)).eval()
    save_autoencoder(wide, tmp_path)
    loaded = load_autoencoder(tmp_path)
    assert loaded.cfg.radius == 10.0
    short = read_structure(DATA / "1D6R_l_u.pdb.gz").chains[0]
    envs8, envs10 = microenvironments(short), microenvironments(short, radius=10.0)
    assert envs10.n_atoms.sum() > 1.5 * envs8.n_atoms.sum()
    with torch.no_grad():
        direct = wide.encode(*tensors(envs10)).numpy()
    np.testing.assert_allclose(embed_chains(loaded, [short])[0], direct, atol=1e-5)
    old = json.loads((tmp_path / "model.json").read_text())
    del old["radius"]
    assert AutoencoderConfig.from_dict(old).radius == 8.0
    with pytest.raises(InputError, match="radius"):
        replace(TINY, radius=0.0)


def test_bad_model_files(tmp_path):
    with pytest.raises(InputError, match="model.json"):
        load_autoencoder(tmp_path)
    save_autoencoder(AtomicAutoencoder(TINY), tmp_path)
    (tmp_path / "model.json").write_text(AutoencoderConfig(width=64, heads=4, layers=1).to_json())
    with pytest.raises(InputError, match="do not match"):
        load_autoencoder(tmp_path)
    with pytest.raises(InputError, match="multiple"):
        AutoencoderConfig(width=30, heads=4)
    bad = json.loads(TINY.to_json()) | {"radius": -1.0}
    (tmp_path / "model.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"model\.json: not a valid autoencoder configuration .*radius"):
        load_autoencoder(tmp_path)


@pytest.mark.parametrize("decoder_input", ["atoms", "embedding"])
def test_a_grown_model_computes_what_its_source_computes(chain, decoder_input):
    """Net2Net: twice the width and heads and one more block, the same outputs; z is two copies of the source's.
    After one optimizer step the copies differ (the split weights give them different gradients)."""
    torch.manual_seed(0)
    source = AtomicAutoencoder(replace(TINY, decoder_input=decoder_input)).eval()
    target = replace(source.cfg, width=64, heads=8, layers=3)
    grown = grow_autoencoder(source, target, seed=1)
    assert grown.cfg == target and not grown.training
    envs = microenvironments(chain, np.arange(30))
    coords, elements, mask = tensors(envs)
    with torch.no_grad():
        before, after = source(coords, elements, mask), grown(coords, elements, mask)
    torch.testing.assert_close(after["z"], torch.cat([before["z"], before["z"]], dim=1), atol=1e-5, rtol=1e-5)
    for key in ("aa_logits", "coords", "disto_logits"):
        torch.testing.assert_close(after[key], before[key], atol=1e-4, rtol=1e-4)
    opt = torch.optim.AdamW(grown.parameters(), lr=1e-3)
    out = grown.train()(coords, elements, mask)
    losses, _ = autoencoder_losses(out, coords, mask, torch.from_numpy(envs.aa), target)
    (losses["aa"] + losses["disto"]).backward()
    opt.step()
    with torch.no_grad():
        z = grown.eval().encode(coords, elements, mask)
    assert (z[:, :32] - z[:, 32:]).abs().max() > 1e-3


def test_growing_refuses_what_it_cannot_keep():
    source = AtomicAutoencoder(TINY)
    for target, why in [
        (replace(TINY, width=48, heads=6), "multiple"),
        (replace(TINY, width=64, heads=4), "8 heads"),
        (replace(TINY, width=64, heads=8, layers=1), "fewer"),
        (replace(TINY, width=64, heads=8, mlp_ratio=4.0), "mlp_ratio"),
    ]:
        assert why in can_grow(TINY, target)
        with pytest.raises(InputError, match=why):
            grow_autoencoder(source, target)


def test_distogram_loss_counts_only_distinct_valid_pairs(chain):
    """Diagonal pairs and pairs with a padded atom carry no loss; the loss is the mean cross-entropy of the rest."""
    torch.manual_seed(0)
    envs = microenvironments(chain, np.arange(0, 40, 13))
    coords, elements, mask = tensors(envs)
    mask[0, 12:] = False  # a small environment: fewer atoms than the pair subset, the rest of its pairs padding
    out = AtomicAutoencoder(TINY).eval()(coords, elements, mask)
    aa = torch.from_numpy(envs.aa)
    loss = autoencoder_losses(out, coords, mask, aa, TINY)[0]["disto"]
    index, valid = out["pair_index"], out["pair_valid"]
    k = index.shape[1]
    changed = {**out, "disto_logits": out["disto_logits"].clone()}
    eye = torch.eye(k, dtype=torch.bool)
    changed["disto_logits"][:, eye] = torch.randn_like(changed["disto_logits"][:, eye]) * 50
    padded = ~(valid[:, :, None] & valid[:, None, :])
    assert padded.any()  # environments of other sizes: some pairs are padding
    changed["disto_logits"][padded] = torch.randn_like(changed["disto_logits"][padded]) * 50
    torch.testing.assert_close(autoencoder_losses(changed, coords, mask, aa, TINY)[0]["disto"], loss)
    take = index[..., None].expand(-1, -1, 3)
    true = torch.cdist(torch.gather(coords, 1, take), torch.gather(coords, 1, take))
    bins = torch.bucketize(true, TINY.disto_edges)
    per_env = []
    for e in range(len(envs)):
        keep = valid[e][:, None] & valid[e][None, :] & ~eye
        per_env.append(F.cross_entropy(out["disto_logits"][e][keep], bins[e][keep]))
    torch.testing.assert_close(loss, torch.stack(per_env).mean(), rtol=1e-4, atol=1e-5)


def test_a_part_of_atom_less_environments_trains_and_validates():
    """Isolated residues (nothing within the radius) sorted into a part of their own were re-padded to no slot at
    all, and the pair heads failed on it (index 0 out of bounds)."""
    from ismtk.autoencoder.step import evaluate, forward_backward, micro_batches
    from ismtk.structure.microenv import Microenvironments, collate

    torch.manual_seed(0)
    cfg = AutoencoderConfig(width=16, heads=2, layers=1, decoder_layers=1, pair_atoms=8)
    model = AtomicAutoencoder(cfg)
    rng = np.random.default_rng(0)
    full = Microenvironments((rng.normal(size=(3, 5, 3)) * 2).astype(np.float32), np.zeros((3, 5), np.int64),
                             np.ones((3, 5), bool), np.array([0, 1, 2]))
    empty = Microenvironments(np.zeros((1, 0, 3), np.float32), np.zeros((1, 0), np.int64), np.zeros((1, 0), bool),
                              np.array([3]))
    batch = collate([full, empty])
    parts = micro_batches(batch, max_pairs=40)
    assert not parts[0].mask.any()  # the atom-less environment alone
    weights = dict.fromkeys(("aa", "disto", "aligned_mse", "distances"), 1.0)
    losses = forward_backward(model, cfg, parts, weights, len(batch), torch.device("cpu"))
    assert torch.isfinite(losses["loss"])
    assert evaluate(model, batch, torch.device("cpu"), 40)["n"] == 4


def test_padding_holds_no_sway_over_training_mode():
    """Padded slots far from every atom left a padded query row with only masked keys in the local attention of
    the training path: NaN everywhere; the inference path (SDPA) was fine."""
    torch.manual_seed(0)
    model = AtomicAutoencoder(AutoencoderConfig(width=16, heads=2, layers=1, decoder_layers=1)).train()
    coords = torch.randn(2, 6, 3) * 2
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    elements = torch.zeros(2, 6, dtype=torch.long)
    clean = model.encode(coords.masked_fill(~mask[..., None], 0.0), elements, mask)
    garbage = model.encode(torch.where(mask[..., None], coords, torch.full_like(coords, 500.0)), elements, mask)
    assert torch.isfinite(garbage).all()
    torch.testing.assert_close(garbage, clean)
