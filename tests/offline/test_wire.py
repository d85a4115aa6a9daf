"""The offline tool encodes secrets and unknowns as the installed Pulumi SDK does."""

from __future__ import annotations

from pulumi.runtime import rpc

from infra.offline import wire


def test_the_markers_are_those_of_the_installed_sdk() -> None:
    assert rpc._special_sig_key == wire.SIG_KEY
    assert rpc._special_secret_sig == wire.SECRET_SIG
    assert rpc._special_asset_sig == wire.ASSET_SIG
    assert wire.UNKNOWN == rpc.UNKNOWN
