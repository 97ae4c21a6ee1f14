"""The request mix: deterministic per index, lengths within bounds, weights, seeds, scripts."""

from collections import Counter

from vvbench.artifacts.scenarios import Scenario
from vvbench.load.mix import RequestMix


def scenario(**cls) -> Scenario:
    base = {"name": "a", "text": {"corpus": "medium"}, "length": {"min_chars": 50, "max_chars": 200}}
    return Scenario.model_validate({"classes": [{**base, **cls}], "arrival": {"closed": {"users": 1}}, "duration": 1})


def test_same_index_same_request_in_any_process():
    mix = RequestMix(scenario())
    assert mix.spec(5) == RequestMix(scenario()).spec(5)
    assert mix.spec(5) != mix.spec(6)


def test_lengths_stay_within_bounds():
    mix = RequestMix(scenario(length={"dist": "lognormal", "median_chars": 120, "min_chars": 60, "max_chars": 150}))
    lengths = [len(mix.spec(i).text) for i in range(200)]
    assert max(lengths) <= 150 and min(lengths) >= 30  # units are whole sentences: may stop short of a long one


def test_class_weights_and_seed_policies():
    s = Scenario.model_validate({
        "classes": [{"name": "a", "weight": 3, "text": {"corpus": "short"}, "seeds": {"policy": "fixed", "value": 9}},
                    {"name": "b", "weight": 1, "text": {"corpus": "short"}, "seeds": {"policy": "server"}}],
        "arrival": {"closed": {"users": 1}}, "duration": 1})
    mix = RequestMix(s)
    specs = [mix.spec(i) for i in range(400)]
    counts = Counter(sp.cls for sp in specs)
    assert 250 < counts["a"] < 350
    assert {sp.seed for sp in specs if sp.cls == "a"} == {9}
    assert {sp.seed for sp in specs if sp.cls == "b"} == {None}
    per_request = RequestMix(scenario(seeds={"policy": "per_request", "value": 100}))
    assert per_request.spec(4).seed == 104


def test_podcast_texts_are_speaker_lines():
    mix = RequestMix(scenario(text={"corpus": "podcast"}, length={"min_chars": 2000, "max_chars": 4000}))
    text = mix.spec(0).text
    lines = text.split("\n")
    assert len(lines) > 5 and all(line.startswith("Speaker ") for line in lines)
    assert 1500 <= len(text) <= 4000
