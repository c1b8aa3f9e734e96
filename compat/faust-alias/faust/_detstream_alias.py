"""Marks the ``faust`` package as detstream's alias, not a real faust (see ``detstream.faust_compat``)."""
