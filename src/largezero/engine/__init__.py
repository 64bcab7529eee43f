"""The zeroing engine: options, the pure plan, the one write loop, execution and zeroout."""
