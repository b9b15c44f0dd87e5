"""Fake persons and a reproducible stream of inserts, updates and deletes (pure, no I/O).

The same seed and mix always yield the same operations with the same item contents, so tests
can predict exactly which changes the table's stream will carry.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from faker import Faker

OpKind = Literal["insert", "update", "delete"]

# Attributes an update may rewrite (the key and the version are handled separately).
UPDATABLE = ("phone", "address", "emails", "balance", "active", "visits", "nickname")


@dataclass(frozen=True, slots=True)
class Mix:
    """Relative weights of inserts, updates and deletes (need not sum to 1)."""

    insert: float = 0.6
    update: float = 0.3
    delete: float = 0.1

    def __post_init__(self) -> None:
        weights = (self.insert, self.update, self.delete)
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"mix weights must be >= 0 and not all zero, got {weights}")

    @classmethod
    def parse(cls, text: str) -> Mix:
        """Parse ``insert=0.6,update=0.3,delete=0.1`` (missing kinds weigh 0)."""
        weights = {"insert": 0.0, "update": 0.0, "delete": 0.0}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            name = name.strip().lower()
            if not sep or name not in weights:
                raise ValueError(f"bad mix entry {part!r}: use insert=..,update=..,delete=..")
            try:
                weights[name] = float(value)
            except ValueError as exc:
                raise ValueError(f"bad mix weight {value!r} for {name}") from exc
        return cls(**weights)

    def __str__(self) -> str:
        return f"insert={self.insert:g},update={self.update:g},delete={self.delete:g}"


@dataclass(frozen=True, slots=True)
class Operation:
    """One change to write: the full image after it (``item``) and before it (``old``).

    ``changes`` holds the attributes an update sets (version included); ``item`` is ``None``
    for a delete and ``old`` is ``None`` for an insert.
    """

    kind: OpKind
    pk: str
    item: Mapping[str, Any] | None
    old: Mapping[str, Any] | None
    changes: Mapping[str, Any] | None = None

    @property
    def key(self) -> dict[str, str]:
        """The primary key as a plain mapping."""
        return {"pk": self.pk}


class PersonGenerator:
    """Seeded source of person operations; tracks which persons are live and their images."""

    def __init__(self, seed: int, mix: Mix | None = None) -> None:
        self.seed = seed
        self.mix = mix or Mix()
        self._rng = random.Random(seed)
        self._fake = Faker("en_US")
        self._fake.seed_instance(seed)
        self._live: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []  # live pks, for O(1) random choice
        self._index: dict[str, int] = {}

    @property
    def live(self) -> Mapping[str, Mapping[str, Any]]:
        """Live persons by pk, with their current image."""
        return self._live

    def live_pks(self) -> list[str]:
        """pks of the live persons, sorted."""
        return sorted(self._live)

    def person(self) -> dict[str, Any]:
        """A new fake person (version 1)."""
        fake, rng = self._fake, self._rng
        pk = f"person-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        return {
            "pk": pk,
            "name": fake.name(),
            "address": self._address(),
            "emails": self._emails(),
            "phone": fake.phone_number(),
            "birthday": fake.date_of_birth(minimum_age=18, maximum_age=90).isoformat(),
            "balance": Decimal(rng.randrange(0, 10_000_000)).scaleb(-2),
            # 20 digits: beyond a double's exact range, so a float round-trip would show.
            "account_number": Decimal(rng.randrange(10**19, 10**20)),
            "visits": rng.randrange(0, 1000),
            "active": rng.random() < 0.8,
            "nickname": None if rng.random() < 0.3 else fake.first_name(),
            "version": 1,
        }

    def _address(self) -> dict[str, Any]:
        fake = self._fake
        return {
            "street": fake.street_address(),
            "city": fake.city(),
            "postcode": fake.postcode(),
            "country": fake.country_code(),
            "geo": {
                "lat": Decimal(str(fake.latitude())).quantize(Decimal("0.000001")),
                "lon": Decimal(str(fake.longitude())).quantize(Decimal("0.000001")),
            },
        }

    def _emails(self) -> set[str]:
        user = self._fake.user_name()
        domains = ("example.com", "example.org", "example.net")
        count = self._rng.randint(1, 3)
        return {f"{user}{i or ''}@{domains[i]}" for i in range(count)}

    def _new_value(self, name: str) -> Any:
        fake, rng = self._fake, self._rng
        if name == "phone":
            return fake.phone_number()
        if name == "address":
            return self._address()
        if name == "emails":
            return self._emails()
        if name == "balance":
            return Decimal(rng.randrange(0, 10_000_000)).scaleb(-2)
        if name == "active":
            return rng.random() < 0.8
        if name == "visits":
            return rng.randrange(0, 1000)
        return fake.first_name()

    def next(self) -> Operation:
        """The next operation; updates and deletes fall back to inserts while nobody is live."""
        mix = self.mix
        kinds: list[OpKind] = ["insert", "update", "delete"]
        kind = self._rng.choices(kinds, weights=[mix.insert, mix.update, mix.delete])[0]
        if kind != "insert" and not self._order:
            kind = "insert"
        if kind == "insert":
            item = self.person()
            self._add(item)
            return Operation("insert", item["pk"], dict(item), None)
        pk = self._order[self._rng.randrange(len(self._order))]
        old = self._live[pk]
        if kind == "delete":
            self._remove(pk)
            return Operation("delete", pk, None, old)
        names = self._rng.sample(UPDATABLE, self._rng.randint(1, 3))
        changes = {name: self._new_value(name) for name in sorted(names)}
        changes["version"] = int(old["version"]) + 1
        item = {**old, **changes}
        self._live[pk] = item
        return Operation("update", pk, dict(item), old, changes)

    def _add(self, item: dict[str, Any]) -> None:
        pk = item["pk"]
        self._live[pk] = item
        self._index[pk] = len(self._order)
        self._order.append(pk)

    def _remove(self, pk: str) -> None:
        del self._live[pk]
        i = self._index.pop(pk)
        last = self._order.pop()
        if last != pk:
            self._order[i] = last
            self._index[last] = i
