"""DiffusionHead and DPMSolver: diffusers agreement, CFG batching, batch invariance."""

from __future__ import annotations

import pytest
import torch

from vvbench.runtime.diffusion import DiffusionHead, DPMSolver, _cosine_alphas_cumprod
from vvbench.runtime.model import build_model

M = 8


@pytest.fixture(scope="module")
def head() -> DiffusionHead:
    return build_model("tiny", seed=1).diffusion


def test_timesteps_and_sigmas_follow_diffusers_linspace():
    solver = DPMSolver(10)
    assert solver.timesteps == [999, 899, 799, 699, 599, 500, 400, 300, 200, 100]
    assert solver.sigmas[-1] == 0.0
    assert all(a > b for a, b in zip(solver.sigmas, solver.sigmas[1:], strict=False))
    assert DPMSolver(5).timesteps == [999, 799, 599, 400, 200]
    with pytest.raises(ValueError):
        DPMSolver(0)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # diffusers 0.42 DPMSolverMultistepScheduler(num_train_timesteps=1000,
        # beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"), same head and noise.
        (5, [0.0051524, -0.632394, 0.7775057]),
        (10, [0.0770323, -0.6481435, 0.92767]),
    ],
)
def test_matches_diffusers_reference_values(steps, expected):
    def toy_head(x, t, cond):
        return torch.tanh(0.7 * x + t[:, None].double() / 1000.0) + cond

    noise = torch.tensor([[1.0], [-0.5], [2.0]], dtype=torch.float64)
    cond = torch.tensor([[0.0], [0.1], [-0.2]], dtype=torch.float64)
    out = DPMSolver(steps).sample(toy_head, noise, cond, None, 1.0)
    torch.testing.assert_close(out.flatten(), torch.tensor(expected, dtype=torch.float64), atol=2e-5, rtol=0)


def test_exact_v_prediction_of_a_point_mass_recovers_it():
    acp = torch.tensor(_cosine_alphas_cumprod(1000), dtype=torch.float64)
    target = torch.linspace(-1, 1, 16, dtype=torch.float64)

    def oracle(x, t, cond):
        a = acp[t.long()].sqrt()[:, None]
        s = (1 - acp[t.long()]).sqrt()[:, None]
        eps = (x - a * target) / s
        return a * eps - s * target

    noise = torch.randn(4, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = DPMSolver(10).sample(oracle, noise, None, None, 1.0)
    torch.testing.assert_close(out, target.expand(4, -1), atol=1e-9, rtol=0)


def test_head_shapes_and_conditioning(head):
    x = torch.randn(4, 64)
    t = torch.full((4,), 500.0)
    cond = torch.randn(4, 256)
    v = head(x, t, cond)
    assert v.shape == (4, 64) and torch.isfinite(v).all()
    assert not torch.allclose(v, head(x, torch.full((4,), 100.0), cond))
    assert not torch.allclose(v, head(x, t, cond + 1))


def test_cfg_runs_the_head_once_per_step_at_twice_the_rows(head):
    calls = []

    def counting(x, t, cond):
        calls.append(x.shape[0])
        return head(x, t, cond)

    cond, neg = torch.randn(3, 256), torch.randn(3, 256)
    noise = torch.randn(3, 64)
    out = DPMSolver(5).sample(counting, noise, cond, neg, 1.3)
    assert calls == [6] * 5
    # With scale 1 the negative branch cancels out.
    plain = DPMSolver(5).sample(head, noise, cond, None, 1.0)
    mixed = DPMSolver(5).sample(head, noise, cond, neg, 1.0)
    torch.testing.assert_close(mixed, plain, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out, plain)
    per_row = torch.full((3, 1), 1.3)  # the engine passes each stream's own scale
    assert torch.equal(DPMSolver(5).sample(head, noise, cond, neg, per_row), out)


def test_sample_row_is_bit_identical_wherever_it_sits(head):
    g = torch.Generator().manual_seed(4)
    noise, cond, neg = torch.randn(64, generator=g), torch.randn(256, generator=g), torch.randn(256, generator=g)

    def run(row: int, seed: int):
        gen = torch.Generator().manual_seed(seed)
        n, c, u = (torch.randn(M, d, generator=gen) * 5 for d in (64, 256, 256))
        n[row], c[row], u[row] = noise, cond, neg
        return DPMSolver(10).sample(head, n, c, u, 1.3)[row]

    assert torch.equal(run(0, seed=1), run(5, seed=2))


def test_ten_steps_keep_latents_order_one(head):
    g = torch.Generator().manual_seed(9)
    cond = torch.randn(M, 256, generator=g)  # unit RMS, like a final-normed LM state
    out = DPMSolver(10).sample(head, torch.randn(M, 64, generator=g), cond, torch.zeros_like(cond), 1.3)
    assert torch.isfinite(out).all()
    assert 0.1 < out.std().item() < 10.0
