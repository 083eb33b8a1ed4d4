"""Settings shared by the whole suite: the two hypothesis profiles.

``dev``, the default, keeps a developer's run short: few examples per property. ``ci``
runs the thorough search CI needs, on hypothesis's own CI settings (derandomized, no
example database): it is chosen when the environment variable ``CI`` is true, as it is
when CI runs ``bash .ci/run``. ``pytest --hypothesis-profile=ci`` chooses it by hand.

Tests that set no ``max_examples`` of their own run the profile's; the costliest ones
run a fraction of it (see tests/property/test_properties.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hypothesis import settings

from fiwareglancesync.booleans import parse_bool

DEV_EXAMPLES = 50
CI_EXAMPLES = 300

settings.register_profile("dev", max_examples=DEV_EXAMPLES)
settings.register_profile("ci", settings.get_profile("ci"), max_examples=CI_EXAMPLES)


def profile_for(environ: Mapping[str, str]) -> str:
    text = environ.get("CI", "").strip()
    if not text:
        return "dev"
    try:
        return "ci" if parse_bool(text) else "dev"
    except ValueError:
        return "ci"  # set to something else (some CIs put their name there): a CI all the same


settings.load_profile(profile_for(os.environ))
