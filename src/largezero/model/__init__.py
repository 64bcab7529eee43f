"""The kernel model: queue limits, zero sources, bios, split, plug; it prices the engine's plan."""
