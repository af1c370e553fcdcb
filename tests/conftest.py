"""Shared fixtures: tiny networks so that the whole suite runs in minutes on a laptop CPU."""

import pytest

from gejax import models


@pytest.fixture(scope="session")
def tiny_began():
    return models.BeganConfig(image_size=8, channels=1, filters=4, latent_dim=3, code_dim=6)


@pytest.fixture(scope="session")
def tiny_ae():
    return models.AEConfig(image_size=8, channels=1, depth=2, filters=2, code_dim=5)
