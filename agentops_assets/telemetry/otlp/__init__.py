"""Read OTLP trace files (OpenTelemetry GenAI and OpenInference spans) into text records.

One span becomes one record. Canonical fields are mapped per docs/telemetry.md; every attribute that
did not land verbatim in a canonical field is kept in the ``attributes`` JSON object. The readers
never raise on bad input: what they cannot map comes back as a :class:`Reject`.

Two encodings, one mapping:

- OTLP/JSON (:func:`read_otlp`): one ``ExportTraceServiceRequest`` object, a JSON array of them,
  or one per line (the collector file exporter), with camelCase or snake_case keys, hex or base64
  ids, AnyValue ints as strings or numbers, and status codes as numbers or enum names.
- Binary protobuf (:func:`read_otlp_protobuf`): one serialized ``ExportTraceServiceRequest``,
  decoded with opentelemetry-proto's generated messages.

Modules: ``values`` (AnyValue and attribute lists), ``ids``, ``conventions`` (which attribute
of which source fills which field), ``mapping`` (a decoded span to a row), ``rows`` (rows to a
frame), ``json_document`` and ``json_file`` (OTLP/JSON), ``protobuf``.
"""

from agentops_assets.telemetry.otlp.json_file import read_otlp
from agentops_assets.telemetry.otlp.protobuf import read_otlp_protobuf

__all__ = ["read_otlp", "read_otlp_protobuf"]
