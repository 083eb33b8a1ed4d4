"""The browser suite: its fixtures live in tests/fixtures/browser.py, shared with the
service's page tests in tests/integration."""

from __future__ import annotations

from tests.fixtures.browser import artifacts, browser  # noqa: F401
