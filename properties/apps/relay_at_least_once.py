"""The relay app under at_least_once, Faust's default (see relay.py)."""

from properties.apps.relay import build

app = build("at_least_once")
