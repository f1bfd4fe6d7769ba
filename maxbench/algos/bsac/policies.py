"""Policies of Bidirectional SAC: SB3's SAC policy plus the VDN-a network and two optimisers.

:class:`BSACPolicy` is :class:`stable_baselines3.sac.policies.SACPolicy` (tanh-Gaussian actor,
twin critics, target critics, built in the same order so that the same seed gives the same
parameters) with, when ``use_vdn`` is true:

* ``vdn``: the :class:`~maxbench.algos.bsac.vdn.ValueDecompositionNetwork` (own features
  extractor) and ``vdn.optimizer``;
* ``actor.forward_optimizer``: a second optimiser over the actor's parameters for the forward-KL
  step, so that the reverse (SAC) step's Adam moments only ever see SAC's gradients.

``use_vdn`` is set by :class:`~maxbench.algos.bsac.BSAC` (true iff ``forward_steps > 0``); with it
false the policy is exactly SAC's, and building it consumes the random stream exactly as SAC does.
"""

from __future__ import annotations

from typing import Any

from gymnasium import spaces
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    NatureCNN,
)
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.sac.policies import SACPolicy

from maxbench.algos.bsac.vdn import DEFAULT_BASIS_SIZE, ValueDecompositionNetwork

__all__ = ["BSACCnnPolicy", "BSACMultiInputPolicy", "BSACPolicy"]


class BSACPolicy(SACPolicy):
    """SAC's policy with the VDN-a network of Bidirectional SAC (module docstring).

    Takes every argument of :class:`~stable_baselines3.sac.policies.SACPolicy`, plus:

    :param use_vdn: build the VDN-a network and the forward-step optimiser (set by BSAC)
    :param vdn_net_arch: hidden layers of the VDN-a state trunk; default: the critic's
    :param vdn_basis_size: K, Chebyshev degrees 1..K per action dimension
    """

    vdn: ValueDecompositionNetwork | None

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        *args: Any,
        use_vdn: bool = True,
        vdn_net_arch: list[int] | None = None,
        vdn_basis_size: int = DEFAULT_BASIS_SIZE,
        **kwargs: Any,
    ) -> None:
        # Read by _build(), which SACPolicy.__init__ calls.
        self.use_vdn = use_vdn
        self.vdn_net_arch = None if vdn_net_arch is None else list(vdn_net_arch)
        self.vdn_basis_size = vdn_basis_size
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        self.vdn = None
        if not self.use_vdn:
            return
        self.vdn = self.make_vdn()
        self.vdn.optimizer = self.optimizer_class(
            self.vdn.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )
        self.actor.forward_optimizer = self.optimizer_class(  # type: ignore[assignment]
            self.actor.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

    def make_vdn(self) -> ValueDecompositionNetwork:
        """A VDN-a network with its own features extractor."""
        features_extractor = self.make_features_extractor()
        net_arch = (
            self.critic_kwargs["net_arch"] if self.vdn_net_arch is None else self.vdn_net_arch
        )
        return ValueDecompositionNetwork(
            observation_space=self.observation_space,
            action_space=self.action_space,
            net_arch=net_arch,
            features_extractor=features_extractor,
            features_dim=features_extractor.features_dim,
            activation_fn=self.activation_fn,
            normalize_images=self.normalize_images,
            basis_size=self.vdn_basis_size,
        ).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            use_vdn=self.use_vdn,
            vdn_net_arch=self.vdn_net_arch,
            vdn_basis_size=self.vdn_basis_size,
        )
        return data

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(mode)
        if self.vdn is not None:
            self.vdn.set_training_mode(mode)


class BSACCnnPolicy(BSACPolicy):
    """:class:`BSACPolicy` with SB3's NatureCNN features extractor by default."""

    def __init__(
        self,
        *args: Any,
        features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class BSACMultiInputPolicy(BSACPolicy):
    """:class:`BSACPolicy` for dict observations (SB3's CombinedExtractor by default)."""

    def __init__(
        self,
        *args: Any,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)
