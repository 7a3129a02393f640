"""Every v1 event reaches exactly its audience: the seed's event table, one case per row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import wait_closed
from wsutil import RFC3339, Room, expect, sentinel

import services.health


async def _register(room: Room) -> Any:
    return await room.api.register(name="Newcomer")


async def _own_edit(room: Room) -> Any:
    return await room.api.call("PATCH", "/api/v1/users/me", {"name": "Renamed", "age": 41},
                               room.user["access_token"])


async def _admin_edit(room: Room) -> Any:
    return await room.api.call("PATCH", f"/api/v1/users/{room.uid}", {"email": "new@x.example"},
                               room.admin["access_token"])


async def _unchanged_edit(room: Room) -> Any:
    return await room.api.call("PATCH", "/api/v1/users/me", {"name": room.user["user"]["name"]},
                               room.user["access_token"])


async def _role_change(room: Room) -> Any:
    return await room.api.call("PUT", f"/api/v1/users/{room.uid}/role", {"role": "admin"},
                               room.superadmin["access_token"])


async def _password_change(room: Room) -> Any:
    return await room.api.call(
        "POST", "/api/v1/users/me/password",
        {"current_password": "password123", "new_password": "password456"},
        room.user["access_token"])


async def _delete(room: Room) -> Any:
    return await room.api.call("DELETE", f"/api/v1/users/{room.uid}",
                               token=room.admin["access_token"])


async def _broadcast(room: Room) -> Any:
    body = {"message": "maintenance", "priority": "high", "metadata": {"at": "02:00"}}
    status, response, headers = await room.api.call("POST", "/ws/broadcast", body,
                                                    room.superadmin["access_token"])
    assert response["recipients"] == 5
    return status, response, headers


def _check(room: Room, event: dict[str, Any], result: Any) -> None:
    """Checks each event type's data against the seed's table."""
    data = event["data"]
    assert RFC3339.match(event["timestamp"])
    match event["type"]:
        case "user.created":
            new = result
            assert data["user_id"] == new["user"]["id"] and data["name"] == "Newcomer"
            assert data["role"] == "user" and data["email"] == new["user"]["email"]
        case "user.updated" | "profile.updated":
            assert data["user_id"] == room.uid and RFC3339.match(data["updated_at"])
            assert sorted(data["changes"]) in (["age", "name"], ["email"])
        case "user.role.changed":
            assert data["user_id"] == room.uid
            assert (data["old_role"], data["new_role"]) == ("user", "admin")
            assert data["changed_by"] == room.superadmin["user"]["id"]
            assert RFC3339.match(data["changed_at"])
        case "password.changed":
            assert data["user_id"] == room.uid
        case "user.deleted":
            assert data["user_id"] == room.uid
            assert data["deleted_by"] == room.admin["user"]["id"]
        case "system.alert":
            assert data == {"message": "maintenance", "priority": "high",
                            "metadata": {"at": "02:00"}, "sent_by": room.superadmin["user"]["id"]}
        case other:
            raise AssertionError(f"unexpected event {other}")


@dataclass(frozen=True)
class Case:
    """One row of the event table: what triggers it and what each group of sockets receives."""

    trigger: Callable[[Room], Awaitable[Any]]
    tabs: tuple[str, ...] = ()  # the subject user's two tabs
    admins: tuple[str, ...] = ()  # an admin and a superadmin
    bystander: tuple[str, ...] = ()  # another plain user
    tabs_close: tuple[int, str] | None = None  # the tabs are then closed with this


CASES = {
    "register": Case(_register, admins=("user.created",)),
    "own profile edit": Case(_own_edit, tabs=("user.updated", "profile.updated"),
                             admins=("user.updated",)),
    "admin edit": Case(_admin_edit, tabs=("user.updated",), admins=("user.updated",)),
    "unchanged edit": Case(_unchanged_edit),
    "role change": Case(_role_change, tabs=("user.role.changed",),
                        admins=("user.role.changed",)),
    "password change": Case(_password_change, tabs=("password.changed",),
                            tabs_close=(1008, "session revoked")),
    "delete": Case(_delete, admins=("user.deleted",), tabs_close=(1008, "account deleted")),
    "broadcast": Case(_broadcast, tabs=("system.alert",), admins=("system.alert",),
                      bystander=("system.alert",)),
}


@pytest.mark.gen_test(timeout=20)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_event_reaches_exactly_its_audience(api, case: Case):
    """Each trigger's events reach exactly the seed's audience, in order, once, and nothing else."""
    room = await Room.open(api)
    result = await case.trigger(room)
    if isinstance(result, tuple):
        assert result[0] == 200, result
    groups = [(room.tabs, case.tabs), (room.admins, case.admins), ([room.b], case.bystander)]
    for conns, types in groups:
        for conn in conns:
            received = [await expect(conn, type_) for type_ in types]
            for event in received:
                _check(room, event, result)
            if types == ("user.updated", "profile.updated"):  # the user's own edit
                assert received[0]["data"] == received[1]["data"]
    still_open = [room.a, room.sa, room.b]
    if case.tabs_close is None:
        still_open += room.tabs
    else:
        for tab in room.tabs:
            assert await wait_closed(tab) == case.tabs_close
    await sentinel(api, room.admin["access_token"], *still_open)


@pytest.mark.gen_test(timeout=20)
async def test_health_flip_reaches_admins_only_and_health_returns_503(api, monkeypatch):
    """When the database check fails, admins get health.status.changed and /health says 503."""
    room = await Room.open(api)

    def broken() -> None:
        raise RuntimeError("database is down")

    monkeypatch.setattr(services.health, "_ping_database", broken)
    assert await api.ctx.health.check() == ("error", {"database": "error"})
    for conn in room.admins:
        event = await expect(conn, "health.status.changed")
        assert event["data"]["status"] == "error" and event["data"]["previous_status"] == "ok"
        assert event["data"]["checks"] == {"database": "error"}
    status, body, _ = await api.call("GET", "/health")
    assert status == 503 and body["status"] == "error"
    await room.quiet()  # the repeated failure in /health is not a flip: nothing new
    monkeypatch.undo()
    assert (await api.ctx.health.check())[0] == "ok"
    for conn in room.admins:
        event = await expect(conn, "health.status.changed")
        assert (event["data"]["status"], event["data"]["previous_status"]) == ("ok", "error")
    await room.quiet()
