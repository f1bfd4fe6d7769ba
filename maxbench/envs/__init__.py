"""maxbench's own gymnasium environments, registered with gymnasium on import."""

from maxbench.envs.registration import register_envs

register_envs()
