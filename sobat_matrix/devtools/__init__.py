"""Tools for tests and the scripted demo: never imported by the bot itself."""

from sobat_matrix.devtools.actor import Actor, ActorError, ReceivedEvent

__all__ = ["Actor", "ActorError", "ReceivedEvent"]
