"""Tenants and API keys, against both stores."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from tenancy_test_utils import StoreFactory

from gateway.tenancy import TenantConfig, TenantExists, TenantNotFound, TenantStore
from gateway.tenancy.keys import KEY_PREFIX, hash_key

CONFIG = TenantConfig(budget={"limit": 10.0, "period": "1d"})  # type: ignore[arg-type]


async def _stored_text(stores: StoreFactory, store: TenantStore) -> str:
    """Everything the store holds, as text: every Redis key and value, or the dicts."""
    if stores.kind == "memory":
        return repr(vars(store))
    client = aioredis.Redis.from_url(stores.url, decode_responses=True)
    parts = []
    async for key in client.scan_iter(f"{stores.namespace}:*"):
        kind = await client.type(key)
        value = {
            "string": client.get,
            "hash": client.hgetall,
            "set": client.smembers,
            "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
        }[kind](key)
        parts.append(f"{key}={await value}")
    await client.aclose()
    return "\n".join(parts)


async def test_keys_are_stored_only_as_hashes(stores: StoreFactory) -> None:
    async with stores() as store:
        await store.create_tenant("acme", CONFIG)
        issued = await store.issue_key("acme")
        assert issued.plaintext.startswith(KEY_PREFIX) and len(issued.plaintext) > 40
        text = await _stored_text(stores, store)
        assert hash_key(issued.plaintext) in text
        assert issued.plaintext not in text
        assert issued.plaintext[len(KEY_PREFIX) :] not in text
        tenant = await store.authenticate(issued.plaintext)
        assert tenant is not None and tenant.id == "acme" and tenant.config == CONFIG


async def test_revoked_key_fails_at_once(stores: StoreFactory) -> None:
    async with stores() as store, stores() as other_replica:
        await store.create_tenant("acme", CONFIG)
        keep, drop = await store.issue_key("acme"), await store.issue_key("acme")
        assert await other_replica.authenticate(drop.plaintext) is not None
        assert await store.revoke_key("acme", drop.key_id) is True
        assert await store.authenticate(drop.plaintext) is None
        if stores.kind == "redis":  # no cache anywhere: another replica sees it too
            assert await other_replica.authenticate(drop.plaintext) is None
        assert (await store.authenticate(keep.plaintext)).id == "acme"  # type: ignore[union-attr]
        keys = {k.key_id: k for k in await store.list_keys("acme")}
        assert keys[drop.key_id].revoked_at is not None and keys[keep.key_id].revoked_at is None
        assert await store.revoke_key("acme", "key_nope") is False
        assert await store.revoke_key("other", keep.key_id) is False


async def test_unknown_keys_do_not_authenticate(stores: StoreFactory) -> None:
    async with stores() as store:
        await store.create_tenant("acme", CONFIG)
        issued = await store.issue_key("acme")
        assert await store.authenticate(issued.plaintext + "x") is None
        assert await store.authenticate("") is None
        assert await store.authenticate(hash_key(issued.plaintext)) is None


async def test_tenant_admin(stores: StoreFactory) -> None:
    async with stores() as store:
        created = await store.create_tenant("acme", CONFIG)
        assert created.created_at == stores.clock.now
        with pytest.raises(TenantExists):
            await store.create_tenant("acme", CONFIG)
        with pytest.raises(ValueError, match="tenant_id"):
            await store.create_tenant("Bad Name{x}", CONFIG)
        with pytest.raises(TenantNotFound):
            await store.update_tenant("ghost", CONFIG)
        with pytest.raises(TenantNotFound):
            await store.issue_key("ghost")
        with pytest.raises(TenantNotFound):
            await store.usage("ghost")
        changed = CONFIG.with_changes(policy="reject", max_llm_share=0.3)
        updated = await store.update_tenant("acme", changed)
        assert updated.config == changed and updated.created_at == created.created_at
        assert (await store.get_tenant("acme")).config == changed  # type: ignore[union-attr]
        assert await store.get_tenant("ghost") is None
        await store.create_tenant("beta", CONFIG)
        assert await store.list_tenants() == ["acme", "beta"]


async def test_open_store_refuses_unknown_urls() -> None:
    from gateway.tenancy import open_store

    with pytest.raises(ValueError, match="store_url"):
        await open_store("postgres://db/x")
    with pytest.raises(ConnectionError, match="cannot reach Redis"):
        await open_store("redis://127.0.0.1:1/0")


def test_both_stores_implement_the_interface() -> None:
    import inspect

    from gateway.tenancy.memory import EmbeddedStore
    from gateway.tenancy.redis_store import RedisStore

    methods = [n for n, f in vars(TenantStore).items() if not n.startswith("_") and callable(f)]
    assert "reserve" in methods and "settle" in methods
    for cls in (EmbeddedStore, RedisStore):
        for name in methods:
            ours = inspect.signature(getattr(TenantStore, name)).parameters
            theirs = inspect.signature(getattr(cls, name)).parameters
            assert list(ours) == list(theirs), (cls.__name__, name)
            assert inspect.iscoroutinefunction(getattr(cls, name)), (cls.__name__, name)
