"""VibeVoice's diffusion head and its DPM-Solver++(2M) sampler.

The head is an MLP denoiser without attention: the noisy 64-d latent is projected to the LM width,
the LM hidden state (the condition) and a sinusoidal timestep embedding are added into one
conditioning vector, and `layers` blocks of adaptive RMSNorm + SwiGLU (shift, scale and gate
regressed from the condition) refine it; a final adaptive-norm layer projects back to the latent.
It predicts v (`v = alpha_t * eps - sigma_t * x0`), as VibeVoice's head does.

The sampler reproduces diffusers' `DPMSolverMultistepScheduler` with the settings VibeVoice uses:
cosine (`squaredcos_cap_v2`) betas over 1000 training steps, `linspace` timestep spacing,
`dpmsolver++` second order with the midpoint rule, first order for the first step and (fewer than
15 steps, zero final sigma) the last one. Schedule arithmetic is done in float64 on the host, so
the only tensor ops are per-row (batch invariant) multiply-adds.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vvbench.runtime.layers import RMSNorm, SwiGLU
from vvbench.runtime.presets import DiffusionSpec

_FREQ_DIM = 256


def timestep_embedding(t: torch.Tensor, dim: int = _FREQ_DIM, max_period: float = 10_000.0):
    """Sinusoidal embedding [M, dim] of float timesteps [M] (cos half first, as in DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def smooth_feature_mask(train_timesteps: int, dim: int = _FREQ_DIM, max_period: float = 10_000.0) -> torch.Tensor:
    """[dim] 1/0 weights of the sinusoidal features: 0 for those with over half a cycle across the schedule.

    A trained head is smooth in t; a random-initialised one weighs every feature alike, and the
    features whose period is a few timesteps make v(x, t) jump between neighbouring timesteps, so
    two step counts integrate unrelated functions and fewer steps never approach the reference
    (measured on `tiny`, 9 against 10 steps: 9 % latent error at the first frame, 9 dB mel SNR;
    with the mask 34 dB, falling steadily with fewer steps — docs/tuning.md). Zero weight for those
    features stands in for what training learns; every row gets the same features (batch invariant).
    """
    half = dim // 2
    # explicit CPU: modules are built under torch.device("meta") (vvbench.runtime.model)
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64, device="cpu") / half)
    keep = (freqs * train_timesteps <= math.pi).to(torch.float32)
    return torch.cat([keep, keep])


class TimestepEmbedder(nn.Module):
    """Sinusoidal features (the fast ones masked, `smooth_feature_mask`) -> Linear -> SiLU -> Linear."""

    def __init__(self, hidden: int, train_timesteps: int = 1000):
        super().__init__()
        self._mask = smooth_feature_mask(train_timesteps)
        self.mlp = nn.Sequential(
            nn.Linear(_FREQ_DIM, hidden, bias=False), nn.SiLU(), nn.Linear(hidden, hidden, bias=False)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        features = timestep_embedding(t) * self._mask.to(t.device)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class HeadLayer(nn.Module):
    """Adaptive-norm block: x + gate * SwiGLU(norm(x) * (1 + scale) + shift)."""

    def __init__(self, hidden: int, ffn: int, eps: float):
        super().__init__()
        self.norm = RMSNorm(hidden, eps)
        self.ffn = SwiGLU(hidden, ffn)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 3 * hidden, bias=False))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.adaLN_modulation(c).chunk(3, dim=-1)
        return x + gate * self.ffn(_modulate(self.norm(x), shift, scale))


class FinalLayer(nn.Module):
    """Adaptive norm (no learned scale) then the projection back to the latent."""

    def __init__(self, hidden: int, latent_dim: int, eps: float):
        super().__init__()
        self.norm_final = RMSNorm(hidden, eps, affine=False)
        self.linear = nn.Linear(hidden, latent_dim, bias=False)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden, bias=False))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(_modulate(self.norm_final(x), shift, scale))


class DiffusionHead(nn.Module):
    """The denoiser: (x_t [M, latent], t [M], cond [M, H]) -> v-prediction [M, latent]."""

    def __init__(self, spec: DiffusionSpec, eps: float = 1e-5):
        super().__init__()
        self.spec = spec
        h = spec.hidden
        self.noisy_images_proj = nn.Linear(spec.latent_dim, h, bias=False)
        self.cond_proj = nn.Linear(h, h, bias=False)
        self.t_embedder = TimestepEmbedder(h, spec.train_timesteps)
        ffn = int(h * spec.ffn_ratio)
        self.layers = nn.ModuleList(HeadLayer(h, ffn, eps) for _ in range(spec.layers))
        self.final_layer = FinalLayer(h, spec.latent_dim, eps)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = self.noisy_images_proj(x_t)
        c = self.cond_proj(cond) + self.t_embedder(t)
        for layer in self.layers:
            x = layer(x, c)
        return self.final_layer(x, c)


def _cosine_alphas_cumprod(train_timesteps: int) -> list[float]:
    """alpha-bar of diffusers' `squaredcos_cap_v2` schedule, betas capped at 0.999."""

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    out, prod = [], 1.0
    for i in range(train_timesteps):
        beta = min(1 - alpha_bar((i + 1) / train_timesteps) / alpha_bar(i / train_timesteps), 0.999)
        prod *= 1.0 - beta
        out.append(prod)
    return out


class DPMSolver:
    """DPM-Solver++(2M) for a v-predicting head, as VibeVoice configures diffusers' scheduler.

    Stateless between calls: `sample` runs the whole `steps`-step loop for M rows. Each row's
    trajectory depends only on its own noise and conditions, so with a fixed M a row's latent is
    bit-identical wherever it sits in the batch.
    """

    def __init__(self, steps: int, train_timesteps: int = 1000):
        if steps < 1:
            raise ValueError(f"diffusion steps must be >= 1, got {steps}")
        self.steps = steps
        self.train_timesteps = train_timesteps
        acp = _cosine_alphas_cumprod(train_timesteps)
        train_sigmas = [math.sqrt((1 - a) / a) for a in acp]
        # linspace spacing: `steps` timesteps from T-1 down, rounded (diffusers' default).
        self.timesteps = [round(i * (train_timesteps - 1) / steps) for i in range(steps, 0, -1)]
        # Integer timesteps, so interpolating the training sigmas is plain indexing.
        self.sigmas = [train_sigmas[t] for t in self.timesteps] + [0.0]

    @staticmethod
    def _alpha_sigma(sigma: float) -> tuple[float, float]:
        alpha = 1.0 / math.sqrt(sigma * sigma + 1.0)
        return alpha, sigma * alpha

    @staticmethod
    def _lambda(alpha: float, sigma: float) -> float:
        return math.log(alpha) - math.log(sigma) if sigma > 0 else math.inf

    def _predict_v(self, head, x, t_value, cond, neg_cond, cfg_scale):
        rows = x.shape[0]
        # Timesteps stay float32 even for bfloat16 models: bf16 would round 999 to 1000.
        if neg_cond is None:
            t = torch.full((rows,), float(t_value), device=x.device, dtype=torch.float32)
            return head(x, t, cond)
        # One head call at 2M rows: positive rows first, then their negatives.
        t = torch.full((2 * rows,), float(t_value), device=x.device, dtype=torch.float32)
        v = head(torch.cat([x, x]), t, torch.cat([cond, neg_cond]))
        v_pos, v_neg = v[:rows], v[rows:]
        return v_neg + cfg_scale * (v_pos - v_neg)

    def sample(
        self,
        head: DiffusionHead,
        noise: torch.Tensor,
        cond: torch.Tensor,
        neg_cond: torch.Tensor | None,
        cfg_scale: float | torch.Tensor,
    ) -> torch.Tensor:
        """Denoise `noise` [M, latent] into latents [M, latent] under `cond` (and CFG).

        With `neg_cond`, `v = v_neg + cfg_scale * (v_pos - v_neg)`; `cfg_scale` may be a float or
        a per-row tensor [M, 1]. Without it, `cfg_scale` is ignored.
        """
        x = noise
        prev_x0 = None
        n = len(self.timesteps)
        for i, t_value in enumerate(self.timesteps):
            v = self._predict_v(head, x, t_value, cond, neg_cond, cfg_scale)
            s0, s_t = self.sigmas[i], self.sigmas[i + 1]
            alpha_s0, sigma_s0 = self._alpha_sigma(s0)
            alpha_t, sigma_t = self._alpha_sigma(s_t)
            x0 = alpha_s0 * x - sigma_s0 * v  # data prediction from v
            lam_t, lam_s0 = self._lambda(alpha_t, sigma_t), self._lambda(alpha_s0, sigma_s0)
            em1 = math.expm1(-(lam_t - lam_s0)) if math.isfinite(lam_t) else -1.0
            first_order = prev_x0 is None or i == n - 1
            if first_order:
                d = x0
            else:
                alpha_s1, sigma_s1 = self._alpha_sigma(self.sigmas[i - 1])
                r0 = (lam_s0 - self._lambda(alpha_s1, sigma_s1)) / (lam_t - lam_s0)
                # midpoint rule: D0 + 0.5 * D1 with D1 = (m0 - m1) / r0
                d = x0 + (0.5 / r0) * (x0 - prev_x0)
            x = (sigma_t / sigma_s0) * x - (alpha_t * em1) * d
            prev_x0 = x0
        return x
