"""The API, one router per concern."""
