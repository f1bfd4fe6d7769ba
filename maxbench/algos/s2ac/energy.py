"""The S2AC energy: ``min_k Q_k(s, a)`` and its action-gradient over states × particles.

S2AC (arXiv 2405.00987, §3.2; spec §1.2) moves each state's particles along the SVGD field whose
score is ``grad_a min_k Q_k(s, a)``. Every SVGD step therefore costs one evaluation of both critics
on ``B·m`` actions plus a backward pass to the action. :class:`CriticEnergy` evaluates SB3's
:class:`~stable_baselines3.common.policies.ContinuousCritic` for a batch of states with ``m``
actions each and returns the minimum over the critics and, when asked, its gradient. Two paths
compute the same numbers:

* **analytic** (whenever the critics are plain MLPs ``Linear, act, ..., Linear`` with an
  activation of :data:`ACTIVATION_DERIVATIVES`, SB3's default; see :class:`AnalyticCritic`): the
  critics' weights are stacked so that both critics run as one batched matmul per layer; the state
  part of the first layer is computed once per state, not once per particle; the gradient is the
  explicit chain rule ``W_1a^T (f'(z_1) * W_2^T (f'(z_2) * w_3))`` made of ordinary differentiable
  torch operations. It needs no autograd under ``torch.no_grad()`` (acting, critic targets), and
  with grad enabled it is differentiable once more (the actor loss backpropagates through the
  scores of every SVGD step, which with autograd needs ``create_graph=True``). For large batches
  the backward pass runs each particle through the critic that attains the minimum only (the
  gradient of a minimum is the gradient of its arg-min), which halves its cost.
* **autograd** (any other critic): SB3's own ``critic(obs, actions)`` and ``torch.autograd.grad``.

Both paths are tested against each other and against autograd on SB3's critic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from stable_baselines3.common.policies import ContinuousCritic
from torch import nn
from torch.nn import functional as F

__all__ = ["ACTIVATION_DERIVATIVES", "AnalyticCritic", "CriticEnergy"]

#: Rows (states × particles) from which the backward pass runs each row through its arg-min
#: critic only (gathering the rows costs less than the second critic's matmuls above this size).
SPLIT_BACKWARD_MIN_ROWS = 256

Derivative = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _elu_derivative(alpha: float) -> Derivative:
    """``elu'(z) = 1`` for ``z > 0`` and ``alpha e^z = elu(z) + alpha`` otherwise."""

    def derivative(z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if alpha == 1.0:  # one op fewer: for z > 0, h + 1 = z + 1 > 1 is clamped to 1
            return (h + 1.0).clamp_max(1.0)
        return torch.where(z > 0, torch.ones_like(h), h + alpha)

    return derivative


def _relu_derivative(z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return (z > 0).to(z.dtype)


def _tanh_derivative(z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return 1.0 - h * h


def _leaky_relu_derivative(slope: float) -> Derivative:
    def derivative(z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, slope))

    return derivative


def _activation_pair(
    module: nn.Module,
) -> tuple[Callable[[torch.Tensor], torch.Tensor], Derivative] | None:
    """``(f, f')`` for an activation module (functional forms: no module-call overhead), or
    None if unsupported; ``f'`` takes the pre-activation ``z`` and ``h = f(z)``."""
    if type(module) is nn.ELU:
        alpha = float(module.alpha)
        return (lambda z: F.elu(z, alpha)), _elu_derivative(alpha)
    if type(module) is nn.ReLU:
        return torch.relu, _relu_derivative
    if type(module) is nn.Tanh:
        return torch.tanh, _tanh_derivative
    if type(module) is nn.LeakyReLU:
        slope = float(module.negative_slope)
        return (lambda z: F.leaky_relu(z, slope)), _leaky_relu_derivative(slope)
    return None


#: Activation modules the analytic path differentiates (anything else uses autograd).
ACTIVATION_DERIVATIVES = (nn.ELU, nn.ReLU, nn.Tanh, nn.LeakyReLU)


@dataclass(frozen=True)
class StackedWeights:
    """A twin (n-) critic's weights stacked over the critics ``C``.

    Attributes:
        state_t: ``(C, F, H1)`` first layer, features part, transposed (a view).
        action_t: ``(C, d, H1)`` first layer, action part, transposed (forward; a view).
        action: ``(C, H1, d)`` the same, untransposed (backward).
        first_bias: ``(C, 1, H1)``.
        hidden_t: per later layer ``(C, in, out)`` transposed weights (forward; views).
        hidden: per later layer ``(C, out, in)`` weights (backward).
        hidden_bias: per later layer ``(C, 1, out)``.
    """

    state_t: torch.Tensor
    action_t: torch.Tensor
    action: torch.Tensor
    first_bias: torch.Tensor
    hidden_t: tuple[torch.Tensor, ...]
    hidden: tuple[torch.Tensor, ...]
    hidden_bias: tuple[torch.Tensor, ...]


class AnalyticCritic:
    """An SB3 critic whose Q-networks can be evaluated and differentiated analytically.

    Build it with :meth:`of`, which returns None when the analytic path does not apply: every
    Q-network must be ``Sequential(Linear, act, ..., Linear)`` (what SB3's ``create_mlp``
    builds) with the same depth and a supported activation, and the critic must not share its
    features extractor (SB3 then computes the features without gradient).

    :meth:`weights` stacks the current weights on every call (a copy of each layer; cheap next to
    one evaluation). They are deliberately not cached: SB3's ``polyak_update`` writes the target
    critic through ``.data``, which leaves the parameters' version counters unchanged, so a cache
    keyed on them would serve stale target weights.
    """

    def __init__(
        self,
        critic: ContinuousCritic,
        activations: tuple[Callable[[torch.Tensor], torch.Tensor], ...],
        derivatives: tuple[Derivative, ...],
    ) -> None:
        self.critic, self.activations, self.derivatives = critic, activations, derivatives
        self.features_dim = critic.features_extractor.features_dim
        self._linears = [list(net.children())[0::2] for net in critic.q_networks]

    @classmethod
    def of(cls, critic: ContinuousCritic) -> AnalyticCritic | None:
        """The analytic view of ``critic``, or None when autograd must be used."""
        if getattr(critic, "share_features_extractor", False):
            return None
        signatures = []
        for net in critic.q_networks:
            modules = list(net.children()) if isinstance(net, nn.Sequential) else []
            if not modules or len(modules) % 2 != 1:
                return None
            linears, activations = modules[0::2], modules[1::2]
            if not all(type(layer) is nn.Linear and layer.bias is not None for layer in linears):
                return None
            if linears[-1].out_features != 1:
                return None
            pairs = [_activation_pair(act) for act in activations]
            if any(pair is None for pair in pairs):
                return None
            signature = tuple(repr(a) for a in activations)
            signatures.append((signature, pairs))
        if not signatures or any(s[0] != signatures[0][0] for s in signatures):
            return None
        pairs = signatures[0][1]
        return cls(critic, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))

    def weights(self, differentiable: bool = True) -> StackedWeights:
        """The current weights stacked over the critics; differentiable w.r.t. them, or, with
        ``differentiable=False``, constants (the parameters' values, outside autograd)."""
        linears, features_dim = self._linears, self.features_dim
        depth = len(linears[0])

        def value(parameter: torch.Tensor) -> torch.Tensor:
            return parameter if differentiable else parameter.detach()

        weights = [torch.stack([value(net[i].weight) for net in linears]) for i in range(depth)]
        biases = [
            torch.stack([value(net[i].bias) for net in linears]).unsqueeze(1) for i in range(depth)
        ]
        first = weights[0]
        action = first[:, :, features_dim:]
        return StackedWeights(
            state_t=first[:, :, :features_dim].transpose(1, 2),
            action_t=action.transpose(1, 2),
            action=action,
            first_bias=biases[0],
            hidden_t=tuple(w.transpose(1, 2) for w in weights[1:]),
            hidden=tuple(weights[1:]),
            hidden_bias=tuple(biases[1:]),
        )


class CriticEnergy:
    """``min_k Q_k(s, a)`` and ``grad_a`` of it for ``B`` states with ``m`` actions each.

    Build one per batch of states (the features and the state part of the first layer are
    computed here, once); then call :meth:`min_q` or :meth:`min_q_and_grad` with actions of shape
    ``(B, m, d)`` as often as needed (once per SVGD step). The weights are read when the energy is
    built: do not update the critic while an energy built from it is in use.

    Args:
        critic: SB3 twin (or n-) critic; the actions are the squashed actions in ``[-1, 1]^d``,
            as stored in SB3's replay buffer.
        obs: the observations, as SB3 passes them to a policy (a tensor or a dict of tensors).
        analytic: :meth:`AnalyticCritic.of` ``critic`` (None forces the autograd path).
    """

    def __init__(
        self,
        critic: ContinuousCritic,
        obs: torch.Tensor | dict[str, torch.Tensor],
        analytic: AnalyticCritic | None,
    ) -> None:
        self.critic, self.obs, self.analytic = critic, obs, analytic
        if analytic is None:
            return
        # The critics are the sampler's fixed target: no gradient reaches their weights through
        # the energy (spec §1.4), so autograd need not track them at all; a compiled actor step
        # (whose backward graph is built for every input that requires grad) would otherwise
        # compute the weights' gradients only to drop them.
        self._w = analytic.weights(differentiable=False)
        features = critic.extract_features(obs, critic.features_extractor)  # (B, F)
        # State part of the first layer, once per state: (C, B, H1).
        self._state_part = torch.matmul(features, self._w.state_t) + self._w.first_bias

    # -- analytic path --------------------------------------------------------------------------
    def _forward(self, actions: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Every critic's Q on ``(B, m, d)`` actions, ``(C, B·m)``, and the hidden (z, f(z))."""
        assert self.analytic is not None
        w = self._w
        B, m, d = actions.shape
        C, _, H1 = self._state_part.shape
        if B == 1:  # acting on one state: one fused op
            z = torch.baddbmm(self._state_part, actions.expand(C, m, d), w.action_t)
        else:
            z = torch.matmul(actions.reshape(B * m, d), w.action_t)  # (C, B·m, H1)
            z = (z.view(C, B, m, H1) + self._state_part.unsqueeze(2)).view(C, B * m, H1)
        hidden = []
        for activation, weight_t, bias in zip(
            self.analytic.activations, w.hidden_t, w.hidden_bias, strict=True
        ):
            h = activation(z)
            hidden.extend((z, h))
            z = torch.baddbmm(bias, h, weight_t)
        return z.squeeze(-1), hidden

    def _backward_all(self, hidden: list[torch.Tensor]) -> torch.Tensor:
        """``grad_a Q_k`` for every critic k: ``(C, N, d)``."""
        assert self.analytic is not None
        w, derivatives = self._w, self.analytic.derivatives
        grad = None
        for index in reversed(range(len(derivatives))):
            z, h = hidden[2 * index], hidden[2 * index + 1]
            weight = w.hidden[index]  # (C, out, in); the output layer has out = 1
            upstream = weight if grad is None else torch.bmm(grad, weight)
            grad = derivatives[index](z, h) * upstream
        assert grad is not None
        return torch.bmm(grad, w.action)

    def _backward_argmin(self, hidden: list[torch.Tensor], argmin: torch.Tensor) -> torch.Tensor:
        """``grad_a Q_{argmin}``, each row through its arg-min critic only: ``(N, d)``."""
        assert self.analytic is not None
        w, derivatives = self._w, self.analytic.derivatives
        N, d = argmin.shape[0], w.action.shape[-1]
        out = hidden[0].new_zeros((N, d))
        for k in range(w.action.shape[0]):
            rows = torch.nonzero(argmin == k).squeeze(1)
            if rows.numel() == 0:
                continue
            grad = None
            for index in reversed(range(len(derivatives))):
                z = hidden[2 * index][k].index_select(0, rows)
                h = hidden[2 * index + 1][k].index_select(0, rows)
                weight = w.hidden[index][k]  # (out, in)
                upstream = weight if grad is None else grad @ weight
                grad = derivatives[index](z, h) * upstream
            assert grad is not None
            out = out.index_copy(0, rows, grad @ w.action[k])
        return out

    # -- autograd path --------------------------------------------------------------------------
    def _repeated_obs(self, m: int) -> torch.Tensor | dict[str, torch.Tensor]:
        obs = self.obs
        if isinstance(obs, dict):
            return {key: value.repeat_interleave(m, dim=0) for key, value in obs.items()}
        return obs.repeat_interleave(m, dim=0)

    def _autograd_min_q(self, actions: torch.Tensor) -> torch.Tensor:
        B, m, d = actions.shape
        q = torch.cat(self.critic(self._repeated_obs(m), actions.reshape(B * m, d)), dim=1)
        return q.min(dim=1).values.reshape(B, m)

    # -- public ---------------------------------------------------------------------------------
    def min_q(self, actions: torch.Tensor) -> torch.Tensor:
        """``min_k Q_k(s_b, a_bj)`` for actions ``(B, m, d)``: shape ``(B, m)``."""
        if self.analytic is None:
            return self._autograd_min_q(actions)
        q, _ = self._forward(actions)
        return q.min(dim=0).values.view(actions.shape[:2])

    def min_q_and_detached_grad(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``min_k Q_k`` (differentiable as usual) and its action-gradient *without* graph.

        One forward pass serves both: the loss needs the values, the amortised sampler the
        gradient at the same actions as a fixed direction (spec §1.6).
        """
        B, m, d = actions.shape
        if self.analytic is None:
            q = self._autograd_min_q(actions)
            _, grad = self.min_q_and_grad(actions.detach())
            return q, grad
        q_all, hidden = self._forward(actions)
        q, argmin = q_all.min(dim=0)
        with torch.no_grad():
            grad = self._select_grad([h.detach() for h in hidden], argmin, B * m, d)
        return q.view(B, m), grad.view(B, m, d)

    def _select_grad(
        self, hidden: list[torch.Tensor], argmin: torch.Tensor, rows: int, d: int
    ) -> torch.Tensor:
        """``grad_a`` of the arg-min critic per row, ``(rows, d)``.

        Compiled (``torch.compile``), always every critic's gradient and a gather: the split
        backward selects rows by value (``nonzero``), a shape the compiler cannot know.
        """
        if rows >= SPLIT_BACKWARD_MIN_ROWS and not torch.compiler.is_compiling():
            return self._backward_argmin(hidden, argmin)
        per_critic = self._backward_all(hidden)  # (C, N, d)
        return per_critic.gather(0, argmin.view(1, -1, 1).expand(1, rows, d)).squeeze(0)

    def min_q_and_grad(
        self, actions: torch.Tensor, create_graph: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``min_k Q_k`` ``(B, m)`` and its gradient w.r.t. the actions ``(B, m, d)``.

        Args:
            actions: ``(B, m, d)`` squashed actions.
            create_graph: autograd path only: keep the gradient differentiable (the analytic
                gradient is differentiable whenever grad mode is on).
        """
        B, m, d = actions.shape
        if self.analytic is None:
            with torch.enable_grad():
                x = actions if actions.requires_grad else actions.detach().requires_grad_(True)
                q = self._autograd_min_q(x)
                (grad,) = torch.autograd.grad(q.sum(), x, create_graph=create_graph)
            if not create_graph:
                q, grad = q.detach(), grad.detach()
            return q, grad
        q_all, hidden = self._forward(actions)
        q, argmin = q_all.min(dim=0)
        grad = self._select_grad(hidden, argmin, B * m, d)
        return q.view(B, m), grad.view(B, m, d)
