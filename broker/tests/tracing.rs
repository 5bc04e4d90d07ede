//! A produce request yields an OTLP trace: an in-process OTLP/gRPC receiver stands in for the
//! collector, the broker exports to it, and the test finds the request span and the partition
//! append span beneath it with the client's id and the topic.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use spate_broker::observability::telemetry;
use tokio::net::TcpStream;
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.clone()),
            Some(Value::IntValue(i)) => Some(i.to_string()),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_request_is_traced_over_otlp() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream_from(listener);
    let server = receiver.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(server))
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    let provider = telemetry::tracer_provider(&format!("http://{addr}")).unwrap();
    tracing_subscriber::registry()
        .with(telemetry::trace_layer(&provider))
        .init();

    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[]).await;
    let mut conn = TcpStream::connect(broker.local_addr).await.unwrap();
    let topic = vec![metadata_request::MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_static_str("traced"))))];
    let _: MetadataResponse = call(
        &mut conn,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_allow_auto_topic_creation(true)
            .with_topics(Some(topic)),
    )
    .await;
    let r: ProduceResponse = call(
        &mut conn,
        ApiKey::Produce,
        9,
        &produce("traced", batch(&["x"])),
    )
    .await;
    assert_eq!(produce_error(&r), 0);
    provider.force_flush().unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (request, append) = loop {
        {
            let spans = receiver.0.lock().unwrap();
            let request = spans.iter().find(|s| s.name == "Produce").cloned();
            let append = spans.iter().find(|s| s.name == "produce.append").cloned();
            if let (Some(r), Some(a)) = (request, append) {
                break (r, a);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no produce trace arrived"
        );
        let _ = provider.force_flush();
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        attr(&request, "client.id").as_deref(),
        Some("bad-input-test")
    );
    assert_eq!(attr(&append, "topic").as_deref(), Some("traced"));
    assert_eq!(append.trace_id, request.trace_id, "one trace");
    assert_eq!(
        append.parent_span_id, request.span_id,
        "append is a child of the request span"
    );
    broker.shutdown().await;
    let _ = provider.shutdown();
}

/// Adapts a TcpListener to the stream of connections tonic's server takes.
fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures_core::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(s, _)| s);
        Some((conn, l))
    })
}
