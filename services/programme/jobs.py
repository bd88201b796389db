"""Periodic work of programme: none yet (every figure is computed when it is read)."""
