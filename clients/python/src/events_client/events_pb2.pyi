from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Event(_message.Message):
    __slots__ = ("type", "timestamp", "channel", "offset", "id", "welcome", "user_created", "user_updated", "user_role_changed", "password_changed", "user_deleted", "system_alert", "health_status_changed", "channel_message", "channel_unsubscribed", "presence", "typing", "user_presence", "auth_refreshed", "reply", "error", "data_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    USER_CREATED_FIELD_NUMBER: _ClassVar[int]
    USER_UPDATED_FIELD_NUMBER: _ClassVar[int]
    USER_ROLE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_CHANGED_FIELD_NUMBER: _ClassVar[int]
    USER_DELETED_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_ALERT_FIELD_NUMBER: _ClassVar[int]
    HEALTH_STATUS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_UNSUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    USER_PRESENCE_FIELD_NUMBER: _ClassVar[int]
    AUTH_REFRESHED_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    timestamp: str
    channel: str
    offset: str
    id: int
    welcome: Welcome
    user_created: UserCreated
    user_updated: UserUpdated
    user_role_changed: UserRoleChanged
    password_changed: PasswordChanged
    user_deleted: UserDeleted
    system_alert: SystemAlert
    health_status_changed: HealthStatusChanged
    channel_message: ChannelMessage
    channel_unsubscribed: ChannelUnsubscribed
    presence: UserRef
    typing: Typing
    user_presence: UserRef
    auth_refreshed: AuthRefreshed
    reply: Reply
    error: Error
    data_json: str
    def __init__(self, type: _Optional[str] = ..., timestamp: _Optional[str] = ..., channel: _Optional[str] = ..., offset: _Optional[str] = ..., id: _Optional[int] = ..., welcome: _Optional[_Union[Welcome, _Mapping]] = ..., user_created: _Optional[_Union[UserCreated, _Mapping]] = ..., user_updated: _Optional[_Union[UserUpdated, _Mapping]] = ..., user_role_changed: _Optional[_Union[UserRoleChanged, _Mapping]] = ..., password_changed: _Optional[_Union[PasswordChanged, _Mapping]] = ..., user_deleted: _Optional[_Union[UserDeleted, _Mapping]] = ..., system_alert: _Optional[_Union[SystemAlert, _Mapping]] = ..., health_status_changed: _Optional[_Union[HealthStatusChanged, _Mapping]] = ..., channel_message: _Optional[_Union[ChannelMessage, _Mapping]] = ..., channel_unsubscribed: _Optional[_Union[ChannelUnsubscribed, _Mapping]] = ..., presence: _Optional[_Union[UserRef, _Mapping]] = ..., typing: _Optional[_Union[Typing, _Mapping]] = ..., user_presence: _Optional[_Union[UserRef, _Mapping]] = ..., auth_refreshed: _Optional[_Union[AuthRefreshed, _Mapping]] = ..., reply: _Optional[_Union[Reply, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., data_json: _Optional[str] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("client_id", "message", "role", "user_id", "epoch", "offset", "recovered", "missed")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    message: str
    role: str
    user_id: int
    epoch: str
    offset: str
    recovered: bool
    missed: int
    def __init__(self, client_id: _Optional[str] = ..., message: _Optional[str] = ..., role: _Optional[str] = ..., user_id: _Optional[int] = ..., epoch: _Optional[str] = ..., offset: _Optional[str] = ..., recovered: _Optional[bool] = ..., missed: _Optional[int] = ...) -> None: ...

class UserCreated(_message.Message):
    __slots__ = ("user_id", "name", "email", "role", "created_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    name: str
    email: str
    role: str
    created_at: str
    def __init__(self, user_id: _Optional[int] = ..., name: _Optional[str] = ..., email: _Optional[str] = ..., role: _Optional[str] = ..., created_at: _Optional[str] = ...) -> None: ...

class UserUpdated(_message.Message):
    __slots__ = ("user_id", "changes", "updated_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    changes: _containers.RepeatedScalarFieldContainer[str]
    updated_at: str
    def __init__(self, user_id: _Optional[int] = ..., changes: _Optional[_Iterable[str]] = ..., updated_at: _Optional[str] = ...) -> None: ...

class UserRoleChanged(_message.Message):
    __slots__ = ("user_id", "old_role", "new_role", "changed_by", "changed_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_ROLE_FIELD_NUMBER: _ClassVar[int]
    NEW_ROLE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    old_role: str
    new_role: str
    changed_by: int
    changed_at: str
    def __init__(self, user_id: _Optional[int] = ..., old_role: _Optional[str] = ..., new_role: _Optional[str] = ..., changed_by: _Optional[int] = ..., changed_at: _Optional[str] = ...) -> None: ...

class PasswordChanged(_message.Message):
    __slots__ = ("user_id", "changed_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    changed_at: str
    def __init__(self, user_id: _Optional[int] = ..., changed_at: _Optional[str] = ...) -> None: ...

class UserDeleted(_message.Message):
    __slots__ = ("user_id", "email", "deleted_by", "deleted_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    DELETED_BY_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    email: str
    deleted_by: int
    deleted_at: str
    def __init__(self, user_id: _Optional[int] = ..., email: _Optional[str] = ..., deleted_by: _Optional[int] = ..., deleted_at: _Optional[str] = ...) -> None: ...

class SystemAlert(_message.Message):
    __slots__ = ("message", "priority", "metadata_json", "sent_by")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SENT_BY_FIELD_NUMBER: _ClassVar[int]
    message: str
    priority: str
    metadata_json: str
    sent_by: int
    def __init__(self, message: _Optional[str] = ..., priority: _Optional[str] = ..., metadata_json: _Optional[str] = ..., sent_by: _Optional[int] = ...) -> None: ...

class HealthStatusChanged(_message.Message):
    __slots__ = ("status", "previous_status", "checks", "changed_at")
    class ChecksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    status: str
    previous_status: str
    checks: _containers.ScalarMap[str, str]
    changed_at: str
    def __init__(self, status: _Optional[str] = ..., previous_status: _Optional[str] = ..., checks: _Optional[_Mapping[str, str]] = ..., changed_at: _Optional[str] = ...) -> None: ...

class UserRef(_message.Message):
    __slots__ = ("user_id", "name")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    name: str
    def __init__(self, user_id: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class ChannelMessage(_message.Message):
    __slots__ = ("id", "body_json", "sent_at", "offset")
    ID_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    BODY_JSON_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    id: str
    body_json: str
    sent_at: str
    offset: str
    def __init__(self, id: _Optional[str] = ..., body_json: _Optional[str] = ..., sent_at: _Optional[str] = ..., offset: _Optional[str] = ..., **kwargs) -> None: ...

class ChannelUnsubscribed(_message.Message):
    __slots__ = ("channel", "reason")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    channel: str
    reason: str
    def __init__(self, channel: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Typing(_message.Message):
    __slots__ = ("user_id", "name", "active")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    name: str
    active: bool
    def __init__(self, user_id: _Optional[int] = ..., name: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class AuthRefreshed(_message.Message):
    __slots__ = ("expires_at",)
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    expires_at: int
    def __init__(self, expires_at: _Optional[int] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("user_id", "name", "connections")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    name: str
    connections: int
    def __init__(self, user_id: _Optional[int] = ..., name: _Optional[str] = ..., connections: _Optional[int] = ...) -> None: ...

class Reply(_message.Message):
    __slots__ = ("channel", "subscribed", "epoch", "offset", "recovered", "missed", "id", "sent_at", "members", "messages")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_FIELD_NUMBER: _ClassVar[int]
    MISSED_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    channel: str
    subscribed: bool
    epoch: str
    offset: str
    recovered: bool
    missed: int
    id: str
    sent_at: str
    members: _containers.RepeatedCompositeFieldContainer[Member]
    messages: _containers.RepeatedCompositeFieldContainer[ChannelMessage]
    def __init__(self, channel: _Optional[str] = ..., subscribed: _Optional[bool] = ..., epoch: _Optional[str] = ..., offset: _Optional[str] = ..., recovered: _Optional[bool] = ..., missed: _Optional[int] = ..., id: _Optional[str] = ..., sent_at: _Optional[str] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., messages: _Optional[_Iterable[_Union[ChannelMessage, _Mapping]]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Request(_message.Message):
    __slots__ = ("id", "subscribe", "unsubscribe", "publish", "presence", "history", "typing", "auth_refresh")
    ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    AUTH_REFRESH_FIELD_NUMBER: _ClassVar[int]
    id: int
    subscribe: Subscribe
    unsubscribe: ChannelRef
    publish: Publish
    presence: ChannelRef
    history: History
    typing: TypingSignal
    auth_refresh: AuthRefresh
    def __init__(self, id: _Optional[int] = ..., subscribe: _Optional[_Union[Subscribe, _Mapping]] = ..., unsubscribe: _Optional[_Union[ChannelRef, _Mapping]] = ..., publish: _Optional[_Union[Publish, _Mapping]] = ..., presence: _Optional[_Union[ChannelRef, _Mapping]] = ..., history: _Optional[_Union[History, _Mapping]] = ..., typing: _Optional[_Union[TypingSignal, _Mapping]] = ..., auth_refresh: _Optional[_Union[AuthRefresh, _Mapping]] = ...) -> None: ...

class Subscribe(_message.Message):
    __slots__ = ("channel", "since", "epoch")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    channel: str
    since: str
    epoch: str
    def __init__(self, channel: _Optional[str] = ..., since: _Optional[str] = ..., epoch: _Optional[str] = ...) -> None: ...

class ChannelRef(_message.Message):
    __slots__ = ("channel",)
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    channel: str
    def __init__(self, channel: _Optional[str] = ...) -> None: ...

class Publish(_message.Message):
    __slots__ = ("channel", "data_json")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    channel: str
    data_json: str
    def __init__(self, channel: _Optional[str] = ..., data_json: _Optional[str] = ...) -> None: ...

class History(_message.Message):
    __slots__ = ("channel", "before", "limit")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    channel: str
    before: str
    limit: int
    def __init__(self, channel: _Optional[str] = ..., before: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class TypingSignal(_message.Message):
    __slots__ = ("channel", "active")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    channel: str
    active: bool
    def __init__(self, channel: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class AuthRefresh(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...
