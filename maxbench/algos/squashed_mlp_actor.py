"""The SB3 actor boilerplate shared by maxbench's MLP samplers (S2AC's q0 and amortised sampler,
SQL's sampler network): squashed actions, and ``net_arch`` / ``features_dim`` /
``activation_fn`` / the features extractor kept as constructor parameters for save/load."""

from __future__ import annotations

from typing import Any

from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim
from torch import nn

__all__ = ["SquashedMlpActor"]


class SquashedMlpActor(BasePolicy):
    """An SB3 actor whose actions are squashed into [-1, 1]^d and rescaled by ``predict``.

    Subclasses build their networks after ``super().__init__`` from ``net_arch``,
    ``features_dim``, ``activation_fn`` and ``action_dim``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: nn.Module | None,
        features_dim: int,
        activation_fn: type[nn.Module],
        normalize_images: bool = True,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
            squash_output=True,
        )
        self.net_arch, self.features_dim, self.activation_fn = net_arch, features_dim, activation_fn
        self.action_dim = get_action_dim(action_space)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            features_dim=self.features_dim,
            activation_fn=self.activation_fn,
            features_extractor=self.features_extractor,
        )
        return data
