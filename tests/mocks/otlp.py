"""An OTLP trace receiver for the tests: the official `TraceService/Export` gRPC service
(PyPI `opentelemetry-proto` + `grpcio`), as an OpenTelemetry Collector's `otlp` receiver
serves it. It keeps every span it is sent, decoded into plain dicts (ids as lower-case
hex, attributes by key), for the tests to look at. No Collector binary installs from the
registries this project reaches; this is the same wire protocol.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    attributes: dict = field(default_factory=dict)
    resource: dict = field(default_factory=dict)


def _value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def _attrs(kvs) -> dict:
    return {kv.key: _value(kv.value) for kv in kvs}


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self):
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self.exports = 0
        self._server: grpc.Server | None = None
        self.port: int | None = None

    def Export(self, request, context):  # noqa: N802 (the service's method name)
        with self._lock:
            self.exports += 1
            for rs in request.resource_spans:
                resource = _attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        self._spans.append(Span(
                            name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(), kind=s.kind,
                            start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano,
                            status_code=s.status.code, attributes=_attrs(s.attributes), resource=resource))
        return trace_service_pb2.ExportTraceServiceResponse()

    def start(self) -> "OtlpReceiver":
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=1).wait(5)
            self._server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def wait_span(self, match, timeout: float = 10.0) -> Span:
        """The first span for which `match(span)` holds, once it has arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in self.spans() if match(s)]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no matching span within {timeout}s; received {len(self.spans())}: "
                             f"{[(s.name, s.attributes.get('gen_ai.conversation.id')) for s in self.spans()]}")
