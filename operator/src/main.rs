//! `spate-operator`: wiring only. Starts the HTTP endpoint, campaigns for the leader lease,
//! and runs the Cluster, Topic and User controllers while it leads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client};
use spate_operator::crd::{Cluster, Topic, User};
use spate_operator::kafka::TcpConnector;
use spate_operator::leader_election::LeaderElector;
use spate_operator::metrics::{self, Metrics};
use spate_operator::reconcilers::{cluster, error_policy, topic, user, Context};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Kubernetes operator for Spate clusters, topics and users"
)]
struct Args {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "SPATE_OPERATOR_HTTP", default_value = "0.0.0.0:8080")]
    http: SocketAddr,
    /// Watch only this namespace (all namespaces when unset).
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "spate-operator")]
    lease_name: String,
    /// The operator's Deployment (in the lease namespace). The lease is owned by it, so it
    /// goes when the Deployment does (`helm uninstall`) instead of outliving the release.
    #[arg(long, env = "OPERATOR_DEPLOYMENT")]
    owner_deployment: Option<String>,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "spate-operator")]
    identity: String,
    /// Seconds between drift checks of healthy resources.
    #[arg(long, default_value_t = 60)]
    resync_seconds: u64,
}

fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// An owner reference to Deployment `name`, or None (logged) when it cannot be read.
async fn deployment_owner(client: &Client, ns: &str, name: &str) -> Option<OwnerReference> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    match api.get(name).await {
        Ok(d) => Some(OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: name.to_string(),
            uid: d.metadata.uid.unwrap_or_default(),
            ..OwnerReference::default()
        }),
        Err(e) => {
            tracing::warn!(deployment = name, error = %e, "cannot read the operator Deployment; the leader lease will have no owner");
            None
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| spate_operator::DEFAULT_LOG_FILTER.into()),
        )
        .init();
    let args = Args::parse();
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(args.http).await?;
    tokio::spawn(metrics::serve(listener, metrics.clone(), ready.clone()));

    let client = Client::try_default().await?;
    client.apiserver_version().await?;
    ready.store(true, Ordering::Release);

    let (leader_tx, mut leader_rx) = tokio::sync::watch::channel(false);
    let mut elector = LeaderElector::new(
        client.clone(),
        &args.lease_namespace,
        &args.lease_name,
        &args.identity,
    );
    if let Some(name) = &args.owner_deployment {
        elector.owner = deployment_owner(&client, &args.lease_namespace, name).await;
    }
    let releaser = elector.clone();
    let campaign = tokio::spawn(elector.run(leader_tx));
    tracing::info!(identity = %args.identity, "waiting for leadership");
    leader_rx.wait_for(|l| *l).await?;
    metrics.leader.set(1);
    tracing::info!("leading: starting controllers");

    let topic_ctl = Controller::new(
        api::<Topic>(&client, &args.watch_namespace),
        watcher::Config::default(),
    );
    let mut ctx = Context::new(
        client.clone(),
        Arc::new(TcpConnector::default()),
        metrics.clone(),
    );
    ctx.resync = Duration::from_secs(args.resync_seconds);
    ctx.topics = Some(topic_ctl.store());
    let ctx = Arc::new(ctx);

    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=spate-operator");
    let clusters = Controller::new(
        api::<Cluster>(&client, &args.watch_namespace),
        watcher::Config::default(),
    )
    .owns(api::<Pod>(&client, &args.watch_namespace), owned.clone())
    .owns(
        api::<Service>(&client, &args.watch_namespace),
        owned.clone(),
    )
    .owns(
        api::<ConfigMap>(&client, &args.watch_namespace),
        owned.clone(),
    )
    .owns(
        api::<PersistentVolumeClaim>(&client, &args.watch_namespace),
        owned,
    )
    .shutdown_on_signal()
    .run(cluster::reconcile, error_policy("Cluster"), ctx.clone())
    .for_each(|_| async {});
    let topics = topic_ctl
        .shutdown_on_signal()
        .run(topic::reconcile, error_policy("Topic"), ctx.clone())
        .for_each(|_| async {});
    let users = Controller::new(
        api::<User>(&client, &args.watch_namespace),
        watcher::Config::default(),
    )
    .shutdown_on_signal()
    .run(user::reconcile, error_policy("User"), ctx)
    .for_each(|_| async {});
    let lost = async move {
        let _ = leader_rx.wait_for(|l| !*l).await;
    };
    tokio::select! {
        _ = futures::future::join3(clusters, topics, users) => {
            tracing::info!("controllers stopped; releasing the leader lease");
            campaign.abort();
            if let Err(e) = releaser.release().await {
                tracing::warn!(error = %e, "releasing the leader lease failed");
            }
        }
        _ = lost => {
            // Another replica may already be reconciling: stop at once, restart as a candidate.
            tracing::error!("lost the leader lease; exiting");
            std::process::exit(1);
        }
    }
    Ok(())
}
