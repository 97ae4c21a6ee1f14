"""Monitoring: samplers, the Prometheus exporter, the watchdog and audio checks.

Layering: this package never imports the reference runtime (`vvbench.runtime`) or torch; it
watches any service from the outside, through its API and the audio it returns.
"""
