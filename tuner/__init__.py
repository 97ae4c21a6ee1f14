"""Optuna search over the runtime's knobs (DESIGN.md section 8); imports nothing at package level."""
