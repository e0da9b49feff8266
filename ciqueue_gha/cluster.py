"""Redis Cluster: a build's client talks to the master that owns the build's slot.

Every key of a build carries the hash tag ``{<build-id>}`` (protocol/keys.py), so a build
lives in one slot, its scripts run there whole, and builds spread over the masters by their
ids. A build's client is a plain client of that master whose connections ask a `SlotOwner`
where to connect: pipelines, the scripts' own connection (protocol/scripts.py), TLS,
passwords, timeouts and the retry budget (connection.BoundedRetry) are those of any server.

When the slot moves (a failover, a reshard), the next call hears MOVED, finds the master
gone, or hears CLUSTERDOWN: the connection is dropped and the call retried within its
budget, reconnecting where the cluster now says. A node that does not own the slot runs
nothing of the call, so retrying it is always safe. ASK and TRYAGAIN (the slot half
migrated) are waited out the same way: the scripts touch many keys of the build at once,
and run once the slot has moved whole.

The map comes from ``CLUSTER SLOTS``, asked on a connection made exactly as the build's
(same TLS checks, credentials, timeouts). redis-py's own `RedisCluster` is not used: at the
oldest redis-py this project supports (4.6) it drops ``ssl_check_hostname`` (a rediss://
cluster would go unverified by name), and it retries by its own rules, not the budget every
other call keeps. Keys outside a build (the durations of a namespace) get a client of their
own slot's master (`keyed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection
from redis.crc import key_slot
from redis.retry import Retry

from .connection import connect, open_server, redact
from .errors import RedisUnreachable
from .protocol.keys import BuildKeys
from .protocol.scripts import error_code


class Address(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


#: Redis's replies that say the slot is served elsewhere, or not now: the call ran nowhere.
REDIRECTS = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")


def slot_of(key: str) -> int:
    """The cluster slot of `key` (its hash tag's, when it has one)."""
    return int(key_slot(key.encode()))


def build_slot(keys: BuildKeys) -> int:
    """The one slot every key of build `keys` is in."""
    return slot_of(keys.prefix)


@dataclass(frozen=True)
class ClusterMap:
    """What ``CLUSTER SLOTS`` said: each range of slots with its master, and every node."""

    ranges: tuple[tuple[int, int, Address], ...]
    nodes: tuple[Address, ...]

    def owner(self, slot: int) -> Address | None:
        for first, last, master in self.ranges:
            if first <= slot <= last:
                return master
        return None

    @property
    def masters(self) -> list[Address]:
        return sorted({master for _, _, master in self.ranges})

    @classmethod
    def parse(cls, reply: list[Any], asked: Address) -> ClusterMap:
        """The map from a ``CLUSTER SLOTS`` reply got from the node at `asked`."""

        def node(entry: list[Any]) -> Address:
            host = entry[0].decode() if isinstance(entry[0], bytes) else str(entry[0] or "")
            # An empty or '?' host is the node's way of saying: the one you asked.
            return Address(host if host not in ("", "?") else asked.host, int(entry[1]))

        ranges = tuple((int(r[0]), int(r[1]), node(r[2])) for r in reply)
        nodes = {node(entry) for r in reply for entry in r[2:]}
        return cls(ranges, tuple(sorted(nodes)))


class SlotOwner:
    """Where the master of one slot is, as the cluster last said; its client's connections
    ask `address` each time they connect.

    `cluster` is None until known (the heartbeat helper finds out at its first connection):
    a server that refuses ``CLUSTER SLOTS`` is not a cluster, and is the address itself.
    """

    def __init__(
        self, slot: int, seed: Address, dial: Callable[[Address], Any], cluster: bool | None
    ) -> None:
        self.slot, self.seed, self.dial, self.cluster = slot, seed, dial, cluster
        self.map: ClusterMap | None = None
        self._address: Address | None = None if cluster is not False else seed
        self._lost: Address | None = None

    def address(self) -> Address:
        """The master to connect to; asks the cluster when not known."""
        if self._address is None:
            self._address = self._locate()
        return self._address

    def lost(self) -> None:
        """A connection to the master failed: ask the cluster again next time."""
        if self.cluster:
            self._lost, self._address = self._address, None

    def redirected(self, error: redis.ResponseError) -> bool:
        """Whether `error` says this slot is served elsewhere or not now (then the call
        ran nowhere and is to be retried); follows a MOVED."""
        code = error_code(error)
        words = str(error).split()
        if code not in REDIRECTS or self.cluster is False:
            return False
        words = words[1:] if words and words[0] == code else words
        if code in ("MOVED", "ASK"):
            if len(words) < 2 or not words[0].isdigit() or int(words[0]) != self.slot:
                return False  # a key outside this slot: the caller's mistake, said as is
            if code == "MOVED":
                host, _, port = words[1].rpartition(":")
                self._address = Address(host or self.address().host, int(port))
        elif code == "CLUSTERDOWN":
            self._address = None
        self.cluster = True
        return True

    def for_slot(self, slot: int) -> SlotOwner:
        """An owner of `slot` in the same cluster, as this one's map says (asked again if
        that is wrong or gone)."""
        owner = SlotOwner(slot, self.seed, self.dial, True)
        owner.map = self.map
        owner._address = self.map.owner(slot) if self.map else None
        return owner

    def _locate(self) -> Address:
        reasons: list[str] = []
        for node in self._ask_order():
            try:
                found = self._read_map(node)
            except redis.ConnectionError as exc:
                reasons.append(f"{node}: {_first_line(exc)}")
                continue
            if found is None:
                if self.cluster:  # a cluster node that will not say (an ACL, say)
                    reasons.append(f"{node}: refused CLUSTER SLOTS")
                    continue
                self.cluster = False  # a single server: it is the address
                return self.seed
            self.map, self.cluster = found, True
            owner = found.owner(self.slot)
            if owner is not None:
                return owner
            reasons.append(f"{node}: no master serves slot {self.slot}")
        said = "; ".join(reasons)
        raise redis.ConnectionError(f"no node of the cluster named the slot's master: {said}")

    def _ask_order(self) -> list[Address]:
        """The nodes to ask: the seed and every node the last map named, the one that was
        just lost last."""
        known = [self.seed, *(node for node in (self.map.nodes if self.map else ()))]
        order = list(dict.fromkeys(known))
        return sorted(order, key=lambda node: node == self._lost)

    def _read_map(self, node: Address) -> ClusterMap | None:
        connection = self.dial(node)
        try:
            connection.send_command("CLUSTER", "SLOTS")
            reply = connection.read_response()
        except redis.ResponseError:
            return None
        except redis.TimeoutError as exc:
            raise redis.ConnectionError(str(exc)) from None
        finally:
            connection.disconnect()
        return ClusterMap.parse(reply, node)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


class FollowsSlot(AbstractConnection):
    """A connection that connects where its `SlotOwner` says, and drops itself on a
    redirect of the slot, raising `redis.ConnectionError`: the caller's retry reconnects."""

    owner: SlotOwner
    host: str
    port: int

    def __init__(self, *, owner: SlotOwner, **kwargs: Any) -> None:
        self.owner = owner
        super().__init__(**kwargs)

    def _connect(self) -> Any:
        self.host, self.port = self.owner.address()
        try:
            return super()._connect()  # type: ignore[safe-super,no-untyped-call]
        except OSError:
            self.owner.lost()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except redis.ResponseError as exc:
            if not self.owner.redirected(exc):
                raise
            self.disconnect()  # type: ignore[no-untyped-call]
            raise redis.ConnectionError(
                f"the build's slot {self.owner.slot} is served elsewhere or not now: "
                f"{error_code(exc)}"
            ) from None


_following: dict[type[Any], type[Any]] = {}


def _follower(base: type[Any]) -> type[Any]:
    """`base` (a TCP connection class: plain or TLS) that follows a slot."""
    if base not in _following:
        made = type(f"{base.__name__}FollowingSlot", (FollowsSlot, base), {"followed": base})
        _following[base] = made
    return _following[base]


def follow(client: redis.Redis, slot: int, *, cluster: bool | None) -> redis.Redis:
    """A client like `client` (same URL, TLS, credentials, timeouts, retries) whose
    connections go to the master of `slot`; `client` itself for a Unix socket."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    followed = kwargs.pop("owner", None)
    base = getattr(pool.connection_class, "followed", pool.connection_class)
    if not issubclass(base, redis.Connection):
        return client
    if isinstance(followed, SlotOwner):
        owner = followed.for_slot(slot)
    else:
        seed = Address(kwargs["host"], int(kwargs["port"]))
        owner = SlotOwner(slot, seed, _dialer(base, kwargs), cluster)
    following = type(pool)(connection_class=_follower(base), owner=owner, **kwargs)
    return redis.Redis(connection_pool=following)


def _dialer(base: type[Any], kwargs: dict[str, Any]) -> Callable[[Address], Any]:
    """Connections to one node each, to ask it the map: tried once, no retries."""
    once = {**kwargs, "retry": Retry(NoBackoff(), 0)}

    def dial(node: Address) -> Any:
        return base(**{**once, "host": node.host, "port": node.port})

    return dial


def owner_of(client: redis.Redis) -> SlotOwner | None:
    """The `SlotOwner` `client` follows, None for a client of one server."""
    owner = client.connection_pool.connection_kwargs.get("owner")
    return owner if isinstance(owner, SlotOwner) else None


def keyed(client: redis.Redis, key: str) -> redis.Redis:
    """A client for `key`: `client` itself, unless it follows a cluster slot and `key` is
    in another (the durations of a namespace): then a client of that slot's master."""
    owner = owner_of(client)
    if owner is None or not owner.cluster or slot_of(key) == owner.slot:
        return client
    return follow(client, slot_of(key), cluster=True)


def open_build(url: str, keys: BuildKeys, *, verify_tls: bool = True) -> redis.Redis:
    """`open_server`, then `on_build`."""
    server = open_server(url, verify_tls=verify_tls)
    return on_build(server.client, url, keys, cluster=server.cluster)


def on_build(
    client: redis.Redis, url: str, keys: BuildKeys, *, cluster: bool | None = None
) -> redis.Redis:
    """`on_slot` for the slot of build `keys`."""
    return on_slot(client, url, build_slot(keys), cluster=cluster)


def on_slot(
    client: redis.Redis, url: str, slot: int, *, cluster: bool | None = None
) -> redis.Redis:
    """`client` (of the server at `url`, reached) for the keys of `slot`: itself, or on a
    cluster a client of the master that owns the slot, found now (a cluster that cannot say
    fails at once, in one line). `cluster`: what the server said it is (None: ask it)."""
    if cluster is False:
        return client
    following = follow(client, slot, cluster=None)
    owner = owner_of(following)
    if owner is None:
        return client
    try:
        owner.address()
    except redis.ConnectionError as exc:
        shown = redact(url)
        raise RedisUnreachable(f"cannot map the cluster at {shown}: {_first_line(exc)}") from None
    if not owner.cluster:
        return client
    client.close()  # its one connection, to the node first reached
    return following


def placement(client: redis.Redis, build_id: str | None) -> str | None:
    """Where a cluster keeps build `build_id` (or builds, without one), in words; None when
    `client` is not a cluster's."""
    owner = owner_of(client)
    if owner is None or not owner.cluster or owner.map is None:
        return None
    masters = owner.map.masters
    listed = ", ".join(map(str, masters))
    said = f"a Redis Cluster of {len(masters)} masters ({listed}): "
    if build_id is None:
        return said + "each build is on the master of its slot (--build-id names it)"
    return said + f"build {build_id} is on master {owner.address()} (slot {owner.slot})"


def connect_build(url: str, keys: BuildKeys, **options: Any) -> redis.Redis:
    """`connect` for build `keys`, finding out at the first connection whether the server
    is a cluster (nothing is sent before): for a process that must not fail at start."""
    return follow(connect(url, **options), build_slot(keys), cluster=None)
