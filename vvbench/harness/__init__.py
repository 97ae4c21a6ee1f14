"""How a benchmark run is driven: targets (embedded, http, command), the run API (one scenario
against one target -> a run directory and a status), and the facts a run records."""
