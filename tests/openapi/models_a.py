"""An ``Item`` (another lives in models_b): their components must not collide."""

import msgspec


class Item(msgspec.Struct):
    name: str
