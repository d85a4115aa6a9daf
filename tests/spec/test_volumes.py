"""The volume descriptions refuse what the platforms would refuse later, at a `pulumi up`."""

from __future__ import annotations

import pytest

from spec.volumes import ApiTokenVolume


def test_an_api_token_lives_at_least_the_ten_minutes_kubernetes_requires() -> None:
    assert ApiTokenVolume(name="api-token").expiration_seconds == 3600
    assert ApiTokenVolume(name="api-token", expiration_seconds=600).expiration_seconds == 600
    with pytest.raises(ValueError, match="'api-token': expiration_seconds must be at least 600"):
        ApiTokenVolume(name="api-token", expiration_seconds=599)
