"""The scenario files shipped with vvbench (package data: `vvbench run smoke` finds them in a wheel install too)."""
