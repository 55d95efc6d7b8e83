"""Spans and metrics as a test sees them: every finished span collected in memory, and the
metrics' text read back into numbers.

Enabled for every test layer by tests/conftest.py. A test asking for ``collected_spans``
records every span the server makes while it runs (apps in threads of this process, as
``live`` starts them, included); the collector's :meth:`SpanCollector.text` is all that
any span carries, for a test that looks for what must never be there (a secret).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from authprofiles import telemetry
from authprofiles.telemetry import metrics


class SpanCollector:
    """The spans finished since the collector was installed (or last :meth:`clear`ed)."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self._exporter = exporter

    @property
    def spans(self) -> Sequence[ReadableSpan]:
        return self._exporter.get_finished_spans()

    def names(self) -> list[str]:
        return [span.name for span in self.spans]

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"{len(found)} spans named {name!r} among {self.names()}"
        return found[0]

    def clear(self) -> None:
        self._exporter.clear()

    def text(self) -> str:
        """Everything every span carries, one line per item: name, attributes (keys and
        values), status, events and their attributes, links, resource."""
        lines: list[str] = []
        for span in self.spans:
            lines.append(f"span {span.name} kind={span.kind.name}")
            lines.extend(f"  {key}={value!r}" for key, value in (span.attributes or {}).items())
            lines.append(f"  status={span.status.status_code.name} {span.status.description}")
            for event in span.events:
                lines.append(f"  event {event.name}")
                lines.extend(
                    f"    {key}={value!r}" for key, value in (event.attributes or {}).items()
                )
            for link in span.links:
                lines.extend(
                    f"  link {key}={value!r}" for key, value in (link.attributes or {}).items()
                )
            lines.extend(
                f"  resource {key}={value!r}" for key, value in span.resource.attributes.items()
            )
        return "\n".join(lines)


@pytest.fixture
def collected_spans() -> Iterator[SpanCollector]:
    """Tracing on for the test, every finished span kept in memory; off again after."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = telemetry.install_tracer_provider(provider)
    try:
        yield SpanCollector(exporter)
    finally:
        telemetry.install_tracer_provider(previous)
        provider.shutdown()


def metrics_text(base_url: str | None = None, token: str | None = None) -> str:
    """The metrics as ``GET {base_url}/metrics`` answers them (with the metrics token, when
    given); without ``base_url``, this process's as the route would render them."""
    if base_url is None:
        return metrics.render().decode()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{base_url}/metrics", headers=headers, timeout=30, trust_env=False)
    assert response.status_code == 200, response.text
    return response.text


def metric_value(text: str, sample: str, **labels: Any) -> float:
    """The value of the sample named ``sample`` (``authprofiles_token_fetches_total``)
    with exactly these ``labels`` in a metrics text; 0 when there is none yet."""
    wanted = {key: str(value) for key, value in labels.items()}
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == sample and found.labels == wanted:
                return float(found.value)
    return 0.0
