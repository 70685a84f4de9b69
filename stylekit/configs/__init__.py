"""One declaration per command: the frozen, self-validating config of each command (stylekit/declare.py).

Standard library only, so `stylekit --help` stays fast and the CLI can import every declaration. The
library modules take these configs and trust them.
"""
