"""Neural style transfer (Gatys et al.) with the options practitioners expect (see docs/transfer.md).

Library entry point: `run_transfer(TransferConfig(content=..., styles=..., out=..., ...)) -> TransferReport`, the config
declared in stylekit/configs/transfer.py.
Methods are looked up in `METHODS` (stylekit/transfer/run.py); "gatys" is the optimisation method.
"""

from stylekit.transfer.run import METHODS, STEP_UNIT, Stylizer, TransferReport, run_transfer

__all__ = ["METHODS", "STEP_UNIT", "Stylizer", "TransferReport", "run_transfer"]
