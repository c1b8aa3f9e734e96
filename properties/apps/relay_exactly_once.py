"""The relay app under exactly_once (see relay.py)."""

from properties.apps.relay import build

app = build("exactly_once")
