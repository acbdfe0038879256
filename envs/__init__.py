"""MDP views of problems and control tasks, installed as ``amorctl.envs``."""
