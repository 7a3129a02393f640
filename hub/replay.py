"""The hub's side of recovery: which missed events a resuming connection may be sent."""

from __future__ import annotations

from hub.broker import Broker
from hub.client import Client
from hub.events import Encoded
from hub.history import Recovery
from hub.messages import Target, ToChannel, matches

__all__ = ["Replay"]


class Replay:
    """Hub methods that read a stream's log for a resume; mixed into hub.hub.Hub.

    Run once per resume or recovering subscription, never per delivery.
    """

    broker: Broker
    recoveries: dict[str, int]
    events_replayed: int

    async def prepare(self, stream: str, since: object = None) -> None:
        """Readies a stream's log for recover() (a shared log may have to be read first)."""
        await self.broker.log.prepare(stream, since)

    def recover(self, client: Client, stream: str, since: object, epoch: object,
                joining: bool = False) -> tuple[Recovery, list[Encoded]]:
        """Returns a stream's recovery for a connection and the missed events it may see.

        Feed entries are filtered by the connection's audience as it is now; `joining` counts
        the stream's channel as subscribed (the subscription follows the replay). The caller
        sends them and registers (or subscribes) in the same IOLoop turn, so no live event
        can come before, between or twice.
        """
        recovery = self.broker.log.recover(stream, since, epoch)
        events = [entry.encode() for entry in recovery.entries
                  if any(_visible(client, target, stream if joining else None)
                         for target in entry.targets)]
        if since is not None:
            self.recoveries["recovered" if recovery.recovered else "not_recovered"] += 1
            self.events_replayed += len(events)
        return recovery, events


def _visible(client: Client, target: Target, joining: str | None) -> bool:
    if joining is not None and isinstance(target, ToChannel) and target.channel == joining:
        return client.user_id != target.skip_user
    return matches(client, target)
