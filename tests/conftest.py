"""Shared pytest configuration: the fixtures live in tests/support/fixtures.py and postgres.py."""

pytest_plugins = ["tests.support.fixtures", "tests.support.postgres"]
