"""Local emulators of outside web services, for tests. Nothing here contacts the real services."""
