"""Test-wide configuration: the service fixtures are plugins under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.azurite",
    "tests.fixtures.batch_emulator",
    "tests.fixtures.functions_host",
]
