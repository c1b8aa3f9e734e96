"""Integrations with other software, as Faust's ``faust.contrib``.

- :mod:`detstream.contrib.asgi`: an App co-hosted with an ASGI web server
  (uvicorn, hypercorn, ...) on one event loop, either direction;
  ``detstream.contrib.fastapi`` is the same module under Faust's older name.
- :mod:`detstream.contrib.otel`: ``OpenTelemetryMonitor``, the monitor's numbers
  on OpenTelemetry instruments (Faust's ``faust.sensors.otel``).
- :mod:`detstream.contrib.opentelemetry`: ``setup_opentelemetry``, a span per
  event an agent processes, and the ASGI application's instrumentation.
- :mod:`detstream.contrib.opentracing`: Faust's OpenTracing ``TracingSensor``.
- :mod:`detstream.contrib.statsd`, :mod:`detstream.contrib.datadog`,
  :mod:`detstream.contrib.prometheus`: Faust's ``StatsdMonitor``,
  ``DatadogMonitor`` and ``PrometheusMonitor`` (``setup_prometheus_sensors``);
  :mod:`detstream.contrib.metric_monitors` and
  :mod:`detstream.contrib.udp_metrics` are what they share.

Nothing here is imported by ``import detstream``; each module imports only
what it needs, and no web framework; the OpenTelemetry, OpenTracing, statsd,
datadog and prometheus_client packages are imported when used, never with
the module.
"""

__all__: list[str] = []
