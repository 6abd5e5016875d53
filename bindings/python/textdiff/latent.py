"""Enumerations of the latent text diffusion API (docs/latent-diffusion.md).

The functions and structs are declared in ``_lib`` (td_latent_*); this module
gives their enumerations Python names."""

import enum


class LatentSchedule(enum.IntEnum):
    """td_latent_schedule: the variance-preserving noise schedule."""

    COSINE = 0
    TAN_D = 1


class LatentPrediction(enum.IntEnum):
    """td_latent_prediction: what the denoiser predicts."""

    X0 = 0
    V = 1


class LatentStage(enum.IntEnum):
    """td_latent_stage: what a td_latent_trainer step trains."""

    AUTOENCODER = 0
    DIFFUSION = 1


class LatentSampler(enum.IntEnum):
    """td_latent_sampler_kind: the reverse process of td_latent_model_generate."""

    DDPM = 0
    DDIM = 1
