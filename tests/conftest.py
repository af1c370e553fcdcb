"""Shared fixtures: tiny networks so that the whole suite runs in minutes on a laptop CPU.

The suite runs on 4 CPU devices (set before JAX starts), so that every command and
training loop is tested on its multi-device path; single-device code uses device 0.
"""

import jax
import pytest

from gejax import models

jax.config.update("jax_num_cpu_devices", 4)  # models imports JAX but starts no backend


@pytest.fixture(scope="session")
def tiny_began():
    return models.BeganConfig(image_size=8, channels=1, filters=4, latent_dim=3, code_dim=6)


@pytest.fixture(scope="session")
def tiny_ae():
    return models.AEConfig(image_size=8, channels=1, depth=2, filters=2, code_dim=5)
