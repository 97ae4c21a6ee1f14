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


def test_round_robin_sends_the_classes_in_turn_with_the_same_request_each_round():
    same = {"text": {"corpus": "short"}, "length": {"min_chars": 20, "max_chars": 80}, "voices": ["alloy", "echo", "fable"],
            "seeds": {"policy": "per_request", "value": 50}}
    s = Scenario.model_validate({
        "mix": "round_robin", "arrival": {"closed": {"users": 1}}, "duration": 1,
        "classes": [{"name": fmt, "response_format": fmt, **same} for fmt in ("wav", "mp3", "opus")]})
    mix = RequestMix(s)
    specs = [mix.spec(i) for i in range(60)]
    assert [sp.cls for sp in specs[:6]] == ["wav", "mp3", "opus"] * 2
    rounds = [specs[i:i + 3] for i in range(0, 60, 3)]
    for r, group in enumerate(rounds):
        assert len({(sp.text, sp.voice, sp.seed) for sp in group}) == 1, group
        assert group[0].seed == 50 + r
        assert [sp.response_format for sp in group] == ["wav", "mp3", "opus"]
    assert len({g[0].text for g in rounds}) > 10 and len({g[0].voice for g in rounds}) == 3  # rounds differ
    assert RequestMix(s).spec(31) == mix.spec(31)


def test_weighted_mix_is_unchanged_by_the_round_robin_option():
    assert RequestMix(scenario()).spec(7) == RequestMix(Scenario.model_validate(
        {**scenario().model_dump(mode="json"), "mix": "weighted"})).spec(7)
