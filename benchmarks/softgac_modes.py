"""Mode coverage of SoftGAC's bridge actor against a fixed four-modal Q (a diagnostic).

The multi-goal acceptance check of issue 4 (at least 3 of 4 goals over 20 stochastic episodes)
mixes two questions: does the critic stay four-modal, and can the actor cover the modes of a
four-modal Q? This script answers the second alone. No environment and no critic: one state, a
fixed Q over the 2-D action box with four equal maxima, and SoftGAC's actor objective
(spec §3: ``E[alpha C(tau) - Q(a)]``, C the path's control energy) minimised by Adam with the
bridge of :class:`maxbench.algos.softgac.bridge.BridgeNetwork`. Printed per alpha: the share of
sampled actions nearest each mode, the mean control energy and the mean Q. A multimodal actor
spreads its samples over the four modes once alpha is small enough to concentrate them.

    Q(a) = -5 min_g ||a - g||^2,   g in {(0.7, 0), (-0.7, 0), (0, 0.7), (0, -0.7)}

Usage::

    .venv/bin/python benchmarks/softgac_modes.py                  # alphas 1, 0.3, 0.1; K = 6
    .venv/bin/python benchmarks/softgac_modes.py --bridge-steps 20 --alphas 0.1
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from maxbench.algos.softgac.bridge import (  # noqa: E402
    BridgeNetwork,
    control_energy,
    sample_bridge_noise,
)

#: The four maxima of the fixed Q, inside the action box.
MODES = torch.tensor([[0.7, 0.0], [-0.7, 0.0], [0.0, 0.7], [0.0, -0.7]])


def four_modal_q(actions: torch.Tensor) -> torch.Tensor:
    """``-5 min_g ||a - g||^2`` over :data:`MODES`: four equal maxima (value 0)."""
    return -5.0 * torch.cdist(actions, MODES).pow(2).min(dim=-1).values


def train_actor(
    alpha: float, bridge_steps: int, iterations: int, batch: int, lr: float, seed: int
) -> dict[str, object]:
    """Minimise ``E[alpha C - Q(a)]`` over the bridge at one state; return the final samples'
    mode shares, mean control energy and mean Q."""
    torch.manual_seed(seed)
    bridge = BridgeNetwork(2, 2, n_steps=bridge_steps, hidden_size=256, input_layer_norm=False)
    optimizer = torch.optim.Adam(bridge.parameters(), lr=lr)
    features = torch.randn(1, 2).expand(batch, 2)
    for _ in range(iterations):
        base, noise = sample_bridge_noise(batch, bridge_steps, 2)
        path = bridge.path(features, base, noise)
        loss = (alpha * control_energy(path) - four_modal_q(torch.tanh(path.final_latent))).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        base, noise = sample_bridge_noise(4096, bridge_steps, 2)
        path = bridge.path(features[:1].expand(4096, 2), base, noise)
        actions = torch.tanh(path.final_latent)
        nearest = torch.cdist(actions, MODES).argmin(dim=-1)
        shares = torch.bincount(nearest, minlength=len(MODES)).float() / len(nearest)
        return {
            "alpha": alpha,
            "mode_shares": [round(float(s), 3) for s in shares],
            "modes_with_5pct": int((shares >= 0.05).sum()),
            "control_energy": float(control_energy(path).mean()),
            "mean_q": float(four_modal_q(actions).mean()),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", type=float, nargs="+", default=[1.0, 0.3, 0.1])
    parser.add_argument("--bridge-steps", type=int, default=6, help="K (SoftGAC's default 6)")
    parser.add_argument("--iterations", type=int, default=3000, help="Adam steps")
    parser.add_argument("--batch", type=int, default=256, help="paths per Adam step")
    parser.add_argument("--lr", type=float, default=3e-4, help="SoftGAC's default actor lr")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        f"bridge K = {args.bridge_steps}, {args.iterations} Adam steps of {args.batch} paths, "
        f"lr {args.lr}, seed {args.seed}; Q with four equal maxima at (+-0.7, 0), (0, +-0.7)"
    )
    print(
        f"  {'alpha':>6}  {'share of samples nearest each mode':<36}{'modes >= 5%':>12}"
        f"{'mean C':>9}{'mean Q':>9}"
    )
    for alpha in args.alphas:
        row = train_actor(alpha, args.bridge_steps, args.iterations, args.batch, args.lr, args.seed)
        shares = " ".join(f"{s:.3f}" for s in row["mode_shares"])  # type: ignore[union-attr]
        print(
            f"  {alpha:>6g}  {shares:<36}{row['modes_with_5pct']:>12}"
            f"{row['control_energy']:>9.2f}{row['mean_q']:>9.2f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
