"""The engine core: states, executions and the pure ``decide`` function. No Ray, DuckDB or I/O."""
