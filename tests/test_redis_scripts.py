"""The Lua scripts of every Redis-backed component build no key names of their own: each key a
script touches comes from its KEYS (on a Redis Cluster a key the caller did not declare may live
on another shard, where the script cannot reach it; a rate limit that built its window's key
name failed every check on a cluster and let every request through)."""

from __future__ import annotations

import re

import pytest

from joey import ratelimit
from joey.caching import redis as cache_scripts
from joey.tasks.redis import scripts as task_scripts

SCRIPTS = {
    **{f"tasks.{name}": source for name, source in vars(task_scripts).items()
       if name.isupper() and isinstance(source, str)},
    **{f"ratelimit.{policy}": source for policy, source in ratelimit._SCRIPTS.items()},
    **{f"cache.{name}": source for name, source in vars(cache_scripts).items()
       if name.startswith("_") and name[1:].isupper() and isinstance(source, str)
       and "redis.call" in source},
}
# a key name made by concatenation: `ARGV[8] .. id`, `KEYS[1] .. ':' .. start`
BUILT = re.compile(r"(KEYS|ARGV)\[[^\]]+\]\s*\.\.")


def test_every_component_has_scripts() -> None:
    assert {name.split(".")[0] for name in SCRIPTS} == {"tasks", "ratelimit", "cache"}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_no_script_builds_a_key_name(name: str) -> None:
    found = BUILT.findall(SCRIPTS[name])
    assert not BUILT.search(SCRIPTS[name]), f"{name} builds key names: {found}"
