"""Time of ismtk's k-means against scikit-learn's KMeans on the same data (1,000,000 x 128, K = 64).

Data: a seeded mixture of 256 Gaussian blobs of random widths in 128 dimensions (embedding-like:
more modes than K, overlapping). Both use greedy k-means++ seeding, one initialisation, the same
iteration cap and tolerance; the inertias must agree within 1%. scikit-learn is needed only here.

    python benchmarks/kmeans_speed.py [--n 1000000] [--dim 128] [-k 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ismtk.autoencoder.codebook import kmeans


def mixture(n: int, dim: int, modes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (modes, dim)).astype(np.float32)
    widths = rng.uniform(0.2, 0.8, modes).astype(np.float32)
    which = rng.integers(0, modes, n)
    return centres[which] + rng.standard_normal((n, dim), dtype=np.float32) * widths[which, None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("-k", type=int, default=64)
    ap.add_argument("--max-iter", type=int, default=50)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batch-size", type=int, default=16384, help="also time ismtk's mini-batch mode")
    args = ap.parse_args()
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    x = mixture(args.n, args.dim, 256, seed=0)
    print(f"data {x.shape}, K={args.k}, threads={args.threads}, max_iter={args.max_iter}")

    t0 = time.perf_counter()
    ours = kmeans(x, args.k, n_init=1, max_iter=args.max_iter, tol=1e-4, seed=0)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    mini = kmeans(x, args.k, n_init=1, max_iter=args.max_iter, tol=1e-4, seed=0, batch_size=args.batch_size)
    t_mini = time.perf_counter() - t0
    with threadpool_limits(args.threads):
        t0 = time.perf_counter()
        ref = KMeans(args.k, n_init=1, max_iter=args.max_iter, tol=1e-4, random_state=0, algorithm="lloyd").fit(x)
        t_ref = time.perf_counter() - t0

    print(f"ismtk lloyd      : {t_ours:7.1f} s  inertia {ours.inertia:.6e}  iterations {ours.iterations}")
    print(f"ismtk mini-batch : {t_mini:7.1f} s  inertia {mini.inertia:.6e}  passes {mini.iterations}")
    print(f"scikit-learn     : {t_ref:7.1f} s  inertia {ref.inertia_:.6e}  iterations {ref.n_iter_}")
    print(f"speed ratio (sklearn time / ismtk time): lloyd {t_ref / t_ours:.2f}x, mini-batch {t_ref / t_mini:.2f}x")
    # the two stop by different rules (ismtk: largest centre shift; scikit-learn: summed shift or stable labels) and
    # seed differently, so they may run different numbers of iterations: per iteration (seeding included) too
    print(f"per Lloyd iteration: ismtk {t_ours / ours.iterations:.3f} s, scikit-learn {t_ref / ref.n_iter_:.3f} s "
          f"({(t_ref / ref.n_iter_) / (t_ours / ours.iterations):.2f}x)")
    print(
        f"inertia vs sklearn: lloyd {ours.inertia / ref.inertia_ - 1:+.2%}, "
        f"mini-batch {mini.inertia / ref.inertia_ - 1:+.2%}"
    )


if __name__ == "__main__":
    main()
