"""Run directories, atomic writes, checkpoints, safe third-party pickle import, console."""
