"""The block part: the zeroing plan and blk-lib style zeroout (and, beside them, the model)."""
