"""Root conftest: the harness's fixtures are shared by every test tree."""

pytest_plugins = ["harness.fixtures.postgres", "harness.fixtures.rtdb", "harness.fixtures.browser"]
