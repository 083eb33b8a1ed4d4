"""A real OpenStack cloud (two Keystones, four Glances) on 127.0.0.1 for integration tests."""
