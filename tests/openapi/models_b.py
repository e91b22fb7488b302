"""An ``Item`` (another lives in models_a): their components must not collide."""

import msgspec


class Item(msgspec.Struct):
    price: float
