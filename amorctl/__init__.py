import amorctl.envs.iterate_gym  # noqa: F401  (registers the amorctl/* gymnasium ids)
