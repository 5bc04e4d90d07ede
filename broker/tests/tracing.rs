//! Spate's traces over OTLP: an in-process OTLP/gRPC receiver stands in for the collector,
//! and the brokers under test (several in one process, told apart by `spate.node.id`) export
//! to it through one tracer provider.
//!
//! - A produce request yields a request span with the partition append beneath it.
//! - In a replicated cluster, an acks=all produce on the leader has a `replication.wait`
//!   child; the leader's span for the follower Fetch that stored the append links to it (and
//!   back), and is itself a child of the follower's `replication.fetch` round; a CreateTopics
//!   sent to a broker that does not lead the metadata quorum shows its proposal forwarded to
//!   the leader as one trace across the two nodes, as do raft's own RPCs.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::cluster::cluster_configs;
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
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_sdk::trace::SdkTracerProvider;
use spate_broker::observability::telemetry;
use spate_broker::Broker;
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

/// The receiver and the exporter, shared by every test in this binary (the subscriber is
/// process-global). Both run on a runtime of their own that outlives each test's runtime.
struct Otlp {
    receiver: Receiver,
    provider: SdkTracerProvider,
}

fn otlp() -> &'static Otlp {
    static OTLP: OnceLock<Otlp> = OnceLock::new();
    OTLP.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let receiver = Receiver::default();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let server = receiver.clone();
                tokio::spawn(async move {
                    tonic::transport::Server::builder()
                        .add_service(TraceServiceServer::new(server))
                        .serve_with_incoming(tokio_stream_from(listener))
                        .await
                        .unwrap();
                });
                let provider = telemetry::tracer_provider(&format!("http://{addr}"), None).unwrap();
                tx.send(Otlp { receiver, provider }).unwrap();
                std::future::pending::<()>().await;
            });
        });
        let otlp: Otlp = rx.recv().unwrap();
        tracing_subscriber::registry()
            .with(telemetry::trace_layer(&otlp.provider))
            .init();
        otlp
    })
}

impl Otlp {
    /// Polls the received spans until `find` returns something (flushing the exporter
    /// between looks), or fails the test after 20 s.
    async fn wait_for<T>(&self, what: &str, mut find: impl FnMut(&[Span]) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let provider = self.provider.clone();
            let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
            if let Some(found) = find(&self.receiver.0.lock().unwrap()) {
                return found;
            }
            assert!(tokio::time::Instant::now() < deadline, "no {what} arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
            Some(Value::BoolValue(b)) => Some(b.to_string()),
            _ => None,
        })
}

fn node(span: &Span) -> Option<i32> {
    attr(span, "spate.node.id").and_then(|n| n.parse().ok())
}

fn is_child(child: &Span, parent: &Span) -> bool {
    child.trace_id == parent.trace_id && child.parent_span_id == parent.span_id
}

/// Does `span` link to `to`?
fn links_to(span: &Span, to: &Span) -> bool {
    span.links
        .iter()
        .any(|l| l.trace_id == to.trace_id && l.span_id == to.span_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_request_is_traced_over_otlp() {
    let otlp = otlp();
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

    let (request, append) = otlp
        .wait_for("produce trace", |spans| {
            let append = spans.iter().find(|s| {
                s.name == "produce.append" && attr(s, "topic").as_deref() == Some("traced")
            })?;
            let request = spans
                .iter()
                .find(|s| s.name == "Produce" && is_child(append, s))?;
            Some((request.clone(), append.clone()))
        })
        .await;
    assert_eq!(
        attr(&request, "client.id").as_deref(),
        Some("bad-input-test")
    );
    assert_eq!(append.trace_id, request.trace_id, "one trace");
    broker.shutdown().await;
}

async fn metadata(addr: std::net::SocketAddr, topic: &str) -> MetadataResponse {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_string(topic.into()))))]))
        .with_allow_auto_topic_creation(false);
    call(&mut conn, ApiKey::Metadata, 12, &req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks_all_produce_trace_shows_its_replication_and_raft_forwarding() {
    const TOPIC: &str = "traced-replicated";
    let otlp = otlp();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs = cluster_configs(&dirs, &[("offsets.topic.num.partitions", "1".into())]);
    let brokers: Vec<Broker> =
        futures_util::future::join_all(configs.into_iter().map(Broker::start))
            .await
            .into_iter()
            .map(|b| b.unwrap())
            .collect();
    let addr = |id: i32| brokers[(id - 1) as usize].local_addr;

    // CreateTopics at a broker that does not lead the metadata quorum: it forwards the
    // proposal.
    let mut controller = -1;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(1..=3).contains(&controller) {
        assert!(tokio::time::Instant::now() < deadline, "no quorum leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
        controller = metadata(addr(1), TOPIC).await.controller_id.0;
    }
    let asked = if controller == 1 { 2 } else { 1 };
    let mut conn = TcpStream::connect(addr(asked)).await.unwrap();
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_num_partitions(1)
            .with_replication_factor(3)]);
    let created: CreateTopicsResponse = call(&mut conn, ApiKey::CreateTopics, 5, &create).await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);

    // acks=all at the partition leader once every broker has applied the topic.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let leader = loop {
        let md = metadata(addr(asked), TOPIC).await;
        let p = md.topics[0].partitions.first().cloned().unwrap_or_default();
        if p.leader_id.0 > 0 && p.isr_nodes.len() == 3 {
            break p.leader_id.0;
        }
        assert!(tokio::time::Instant::now() < deadline, "topic not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut to_leader = TcpStream::connect(addr(leader)).await.unwrap();
    let mut req = produce(TOPIC, batch(&["replicated"]));
    req.acks = -1;
    req.timeout_ms = 10_000;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r: ProduceResponse = call(&mut to_leader, ApiKey::Produce, 9, &req).await;
        match produce_error(&r) {
            0 => break,
            // The leader has not applied its leadership yet.
            3 | 5 | 6 if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            code => panic!("acks=all produce failed: {code}"),
        }
    }

    // The produce on the leader, and its replication wait beneath it.
    let (request, wait) = otlp
        .wait_for("acks=all produce trace", |spans| {
            let wait = spans.iter().find(|s| {
                s.name == "replication.wait" && attr(s, "topic").as_deref() == Some(TOPIC)
            })?;
            let request = spans
                .iter()
                .find(|s| s.name == "Produce" && is_child(wait, s))?;
            Some((request.clone(), wait.clone()))
        })
        .await;
    assert_eq!(node(&request), Some(leader), "produced at the leader");
    assert_eq!(attr(&wait, "outcome").as_deref(), Some("acknowledged"));
    assert_eq!(attr(&wait, "hw.awaited").as_deref(), Some("1"));

    // The leader's spans for follower fetches that stored the append link to the wait, and
    // the wait links back to them; each is a child of the follower's fetch round.
    let (fetch, round) = otlp
        .wait_for("a replica fetch linked to the produce", |spans| {
            spans
                .iter()
                .filter(|s| s.name == "Fetch" && links_to(s, &wait))
                .find_map(|fetch| {
                    let round = spans
                        .iter()
                        .find(|r| r.name == "replication.fetch" && is_child(fetch, r))?;
                    Some((fetch.clone(), round.clone()))
                })
        })
        .await;
    assert_eq!(node(&fetch), Some(leader), "the leader served the fetch");
    assert_eq!(attr(&fetch, "spate.replication").as_deref(), Some("true"));
    let follower = node(&round).unwrap();
    assert_ne!(follower, leader);
    assert_eq!(attr(&fetch, "replica_id"), Some(follower.to_string()));
    assert_eq!(attr(&round, "leader"), Some(leader.to_string()));
    assert!(
        links_to(&wait, &fetch),
        "the wait links to the acknowledging fetch"
    );

    // The forwarded CreateTopic proposal: proposed on `asked`, forwarded to the quorum
    // leader, one trace across the two nodes.
    let (propose, forward, served) = otlp
        .wait_for("a forwarded CreateTopic proposal", |spans| {
            spans
                .iter()
                .filter(|s| {
                    s.name == "meta.propose"
                        && attr(s, "meta.request").as_deref() == Some("CreateTopic")
                        && node(s) == Some(asked)
                })
                .find_map(|propose| {
                    let forward = spans.iter().find(|f| {
                        f.name == "ClientWrite"
                            && f.kind == SpanKind::Client as i32
                            && is_child(f, propose)
                    })?;
                    let served = spans.iter().find(|s| {
                        s.name == "ClientWrite"
                            && s.kind == SpanKind::Server as i32
                            && is_child(s, forward)
                    })?;
                    Some((propose.clone(), forward.clone(), served.clone()))
                })
        })
        .await;
    assert_eq!(node(&forward), Some(asked));
    assert_eq!(
        node(&served),
        Some(controller),
        "served by the quorum leader"
    );
    assert_eq!(
        attr(&served, "meta.request").as_deref(),
        Some("CreateTopic")
    );
    assert!(
        spans_named(otlp, "CreateTopics")
            .iter()
            .any(|s| is_child(&propose, s) && node(s) == Some(asked)),
        "the proposal is part of the CreateTopics request's trace"
    );

    // Raft's own RPCs: AppendEntries from the quorum leader, served by a follower as part
    // of the same trace.
    let (sent, received) = otlp
        .wait_for("an AppendEntries trace", |spans| {
            spans
                .iter()
                .filter(|s| s.name == "AppendEntries" && s.kind == SpanKind::Client as i32)
                .find_map(|sent| {
                    let received = spans.iter().find(|r| {
                        r.name == "AppendEntries"
                            && r.kind == SpanKind::Server as i32
                            && is_child(r, sent)
                    })?;
                    Some((sent.clone(), received.clone()))
                })
        })
        .await;
    assert_eq!(
        attr(&sent, "raft.target").and_then(|t| t.parse().ok()),
        node(&received)
    );
    assert_ne!(node(&sent), node(&received));

    for b in brokers {
        b.shutdown().await;
    }
}

fn spans_named(otlp: &Otlp, name: &str) -> Vec<Span> {
    otlp.receiver
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.name == name)
        .cloned()
        .collect()
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
