"""One module per CLI command; each imports only click at import time."""

from .train import eval_command, train_command

COMMANDS = [train_command, eval_command]
