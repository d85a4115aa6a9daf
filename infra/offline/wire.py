"""The engine's wire format for property values: how a secret and a value not known yet are
marked, as the program's inputs arrive under mocks and as the policy pack receives them.

The values of `_special_sig_key`, `_special_secret_sig`, `_special_asset_sig` and `UNKNOWN` in
pulumi's `pulumi/runtime/rpc.py` (pulumi 3.x); tests/offline/test_wire.py fails if the
installed SDK encodes them differently.
"""

from __future__ import annotations

from typing import Final

SIG_KEY: Final = "4dabf18193072939515e22adb298388d"
"""The key that marks a special value (a secret, an asset...); its value says which one."""
SECRET_SIG: Final = "1b47061264138c4ac30d75fd1eb44270"
"""The value under SIG_KEY of a secret, wrapped as {SIG_KEY: SECRET_SIG, "value": ...}."""
ASSET_SIG: Final = "c44067f5952c0a294b673a41bacd8c17"
"""The value under SIG_KEY of an asset; the tests send one without its fields, which the SDK
cannot deserialize."""
UNKNOWN: Final = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""A value not known until the update runs (any type), as during a preview."""
