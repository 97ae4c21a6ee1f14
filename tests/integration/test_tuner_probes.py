"""The tuner's quality probes on a real `vvbench serve`: sent together to a batch-invariant config, the same audio as alone."""

from __future__ import annotations

import numpy as np

from tests.integration.serverkit import Server
from vvbench.tuner.quality import Probe, synthesise

PROBES = [Probe("The first probe of the tuning scenario.", "alloy", 3), Probe("And a second one, a little longer than it.", "onyx", 4)]


def _batch_sizes(server: Server) -> dict[int, int]:
    return {int(k): v for k, v in server.stats()["batch_sizes"].items()}


def test_probes_sent_together_share_a_batch_and_give_the_audio_sent_alone_gives(tmp_path):
    # batch invariance is the runtime's default; the window makes the second probe join the first one's batch
    server = Server(tmp_path, tmp_path / "data", "--batch-window-ms", "200").serve()
    try:
        alone = synthesise(server.url, PROBES)
        assert max(_batch_sizes(server)) == 1  # one after the other: never stepped together
        together = synthesise(server.url, PROBES, together=True)
        assert max(_batch_sizes(server)) == 2  # stepped together
    finally:
        server.stop(30)
    assert len(together) == len(alone) == 2
    for a, b in zip(alone, together, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(alone[0][: len(alone[1])], alone[1][: len(alone[0])])  # in probe order, not swapped
