"""Fuzzing the request path (issue #25): see docs/testing.md, "How Joey itself is fuzzed"."""
