"""Paths of rooms: rooms, their members and messages, and who is online."""

from __future__ import annotations

from typing import Any

from openapi.build import (
    BEARER,
    body,
    integer,
    link,
    obj,
    operation,
    path_param,
    query_param,
    ref,
    string,
    success,
    text,
)
from openapi.components import ROOM_NAME

__all__ = ["paths"]

TAG = "Rooms"
NAME = path_param("name", ROOM_NAME, "the room's name (channel `room:<name>`)", "lobby")
ID = integer(minimum=1, maximum=999_999_999_999_999_999)
MEMBER_ID = path_param("user_id", ID, "the member's user id", 7)
ROOM_EXAMPLE = {"name": "dev", "channel": "room:dev", "title": "Developers", "private": True,
                "owner_id": 42, "created_at": "2026-11-26T10:00:00Z", "subscribers": 3,
                "online": 2}
MESSAGE_DATA = {"type": "object", "description": "any JSON object, at most 16 KiB"}


def _room_links() -> dict[str, Any]:
    """Returns the links from an answer naming a room to what can be done with it."""
    name = {"path.name": "$response.body#/data/name"}
    return {
        "GetRoom": link("getRoom", "Reads the room.", name),
        "AddMember": link("addMember", "Admits a user to the room.", name),
        "ListMembers": link("listMembers", "Lists the room's members.", name),
        "PostMessage": link("postMessage", "Publishes to the room.", name),
        "ListMessages": link("listMessages", "Reads the room's messages.", name),
        "DeleteRoom": link("deleteRoom", "Deletes the room.", name),
    }


def _rooms() -> dict[str, Any]:
    """Returns /api/v1/rooms and /api/v1/rooms/{name}."""
    create = obj({"name": ROOM_NAME, "title": text("up to 200 characters, no NUL", maxLength=200),
                  "private": {"type": "boolean"}}, required=("name",))
    errors = (401, 403, 404, 503)
    return {
        "/api/v1/rooms": {
            "get": operation("listRooms", TAG, "List rooms",
                             "Public rooms and the caller's private ones (admins: all), by "
                             "name, with live counts.", security=BEARER, errors=(401, 503),
                             responses={"200": success("The rooms.", obj({"rooms": {
                                 "type": "array", "items": ref("Room")}}))}),
            "post": operation(
                "createRoom", TAG, "Create a room",
                "The caller becomes its owner and first member (at most "
                "`--max-rooms-per-user` rooms each).", security=BEARER,
                errors=(400, 401, 403, 409, 413, 503),
                request_body=body(create, {"name": "dev", "title": "Developers",
                                           "private": True}),
                responses={"201": success("The room.", ref("Room"), example=ROOM_EXAMPLE,
                                          links=_room_links())})},
        "/api/v1/rooms/{name}": {
            "get": operation("getRoom", TAG, "Read a room",
                             "A room the caller may see (public, a member, or an admin).",
                             security=BEARER, errors=errors, parameters=[NAME],
                             responses={"200": success("The room.", ref("Room"))}),
            "delete": operation(
                "deleteRoom", TAG, "Delete a room",
                "Owner or admin; subscribers get `channel.unsubscribed` at once. "
                "`room:lobby` cannot be deleted.", security=BEARER, errors=errors,
                parameters=[NAME], responses={"200": success("The deleted room.",
                                                             ref("Room"))})},
    }


def _members() -> dict[str, Any]:
    """Returns the members paths."""
    added_links = {"RemoveMember": link(
        "removeMember", "Removes the member just added.",
        {"path.name": "$request.path.name", "path.user_id": "$response.body#/data/user_id"})}
    removed = obj({"room": ROOM_NAME, "user_id": integer(minimum=1), "removed": {"const": True}})
    return {
        "/api/v1/rooms/{name}/members": {
            "get": operation("listMembers", TAG, "List members",
                             "The room's members, the owner flagged.", security=BEARER,
                             errors=(401, 403, 404, 503), parameters=[NAME],
                             responses={"200": success("The members.", obj({"members": {
                                 "type": "array", "items": ref("Member")}}))}),
            "post": operation(
                "addMember", TAG, "Add a member", "Owner or admin admits a user.",
                security=BEARER, errors=(400, 401, 403, 404, 409, 413, 503),
                parameters=[NAME],
                request_body=body(obj({"user_id": ID}), {"user_id": 7}),
                responses={"201": success("The new member.", ref("Member"),
                                          links=added_links)})},
        "/api/v1/rooms/{name}/members/{user_id}": {"delete": operation(
            "removeMember", TAG, "Remove a member",
            "The owner or an admin removes anyone but the owner; a member may leave.",
            security=BEARER, errors=(401, 403, 404, 503), parameters=[NAME, MEMBER_ID],
            responses={"200": success("Removed.", removed)})},
    }


def _messages() -> dict[str, Any]:
    """Returns the room messages path and the presence path."""
    page = [NAME,
            query_param("limit", integer(minimum=1, maximum=100), "messages per page "
                        "(default 50)", False, 20),
            query_param("before", string("a message id: the page ends before it",
                                         pattern="^[0-9a-f]{0,32}$"),
                        "`next_before` of the previous page")]
    history = obj({"messages": {"type": "array", "items": ref("StoredMessage")},
                   "next_before": {"type": ["string", "null"],
                                   "description": "null on the last page"}})
    sent_links = {"ListMessages": link("listMessages", "Reads the room's messages.",
                                       {"path.name": "$request.path.name"})}
    online = obj({"online": {"type": "array", "items": obj({
        "user_id": integer(minimum=1), "name": string(), "connections": integer(minimum=0)})}})
    return {
        "/api/v1/rooms/{name}/messages": {
            "get": operation("listMessages", TAG, "Read messages",
                             "Stored messages, newest first, a page at a time.",
                             security=BEARER, errors=(400, 401, 403, 404, 503),
                             parameters=page,
                             responses={"200": success("A page of messages.", history)}),
            "post": operation(
                "postMessage", TAG, "Publish a message",
                "Publishes to the room as the socket's `publish` verb does (same access rule, "
                "16 KiB limit and per-user rate).", security=BEARER,
                errors=(400, 401, 403, 404, 413, 429, 503), parameters=[NAME],
                request_body=body(obj({"data": MESSAGE_DATA}), {"data": {"text": "hello"}}),
                responses={"201": success("The message as sent.", ref("MessageSent"),
                                          links=sent_links)})},
        "/api/v1/presence": {"get": operation(
            "listOnline", TAG, "Who is online",
            "Every user with a connection (or within the 5 s grace), summed over the cluster "
            "(admins).", security=BEARER, errors=(401, 403, 503),
            responses={"200": success("Users online.", online)})},
    }


def paths() -> dict[str, Any]:
    """Returns every room path."""
    return {**_rooms(), **_members(), **_messages()}
