"""The run machinery: configs, run directories, checkpoints, finiteness, errors, the run loop and the CLI."""
