"""The /v1/stats model: one shape for the service, the samplers and the fake server; samplers' columns are the schema's."""

from vvbench.artifacts.schemas import SAMPLE_COLUMNS
from vvbench.artifacts.stats import ServiceStats
from vvbench.monitor.nvml import NvmlSampler
from vvbench.monitor.sampleloop import SampleLoop
from vvbench.monitor.samplers import HostOtherCpuSampler, ProcessTreeSampler, ServiceStatsSampler, SystemCpuSampler


def test_every_sampler_column_is_a_samples_schema_column():
    loop = SampleLoop([ProcessTreeSampler(None), SystemCpuSampler(), HostOtherCpuSampler([]), NvmlSampler(None), ServiceStatsSampler(None)])
    assert set(loop.columns) <= set(SAMPLE_COLUMNS), set(loop.columns) - set(SAMPLE_COLUMNS)
    assert set(SAMPLE_COLUMNS) <= set(loop.columns), "a schema column no sampler fills"


def test_a_foreign_servers_stats_keep_what_is_known_and_the_rest_is_na():
    stats = ServiceStats.read({"queue_depth": 3, "active_streams": "many", "gpu": {"x": 1}, "service": {"active_http_streams": 2}})
    assert stats.queue_depth == 3 and stats.active_streams is None
    assert stats.sample()["queue_depth"] == 3.0 and stats.sample()["active_streams"] == 2.0
    assert ServiceStats.read(["not", "a", "dict"]).sample()["queue_depth"] is None
