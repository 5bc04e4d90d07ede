//! Wiring only: flags, client, bridge, node registration, the watch loops, shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use spate_node_agent::config::{Args, ImageMap};
use spate_node_agent::context::Ctx;
use spate_node_agent::dns::{self, Hosts};
use spate_node_agent::ipam::Ipam;
use spate_node_agent::launch::Tools;
use spate_node_agent::node::{self, NodeFacts};
use spate_node_agent::{api_proxy, netns, pod_sync, pvc};
use tokio::signal::unix::{signal, SignalKind};

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    let args = Args::parse();

    let mut mappings: Vec<String> = args.images.clone();
    if let Some(path) = &args.image_config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        mappings.extend(text.lines().map(String::from));
    }
    let images = ImageMap::parse(mappings.iter().map(String::as_str))?;
    let tools = Tools::find()?;
    let ipam = Ipam::new(&args.pod_cidr)?;
    let gateway = ipam.gateway();
    let prefix = ipam.prefix();

    let config = kube::Config::infer()
        .await
        .context("loading kubeconfig (KUBECONFIG)")?;
    let api_port = args
        .api_server_port
        .or_else(|| config.cluster_url.port_u16())
        .unwrap_or(6443);
    let api_host = args.api_server_host.clone();
    let upstream = format!(
        "{}:{}",
        config.cluster_url.host().unwrap_or("127.0.0.1"),
        config.cluster_url.port_u16().unwrap_or(443)
    );
    let client = kube::Client::try_from(config)?;

    std::fs::create_dir_all(&args.state_dir)?;
    netns::delete_stale().await;
    netns::ensure_bridge(&args.bridge, gateway, prefix)
        .await
        .context("setting up the pod bridge")?;
    tracing::info!(bridge = %args.bridge, %gateway, "pod network ready");
    let proxy = if args.api_proxy {
        match api_proxy::bind((gateway, api_port).into()).await {
            Ok(listener) => {
                tracing::info!(listen = %format!("{gateway}:{api_port}"), %upstream, "proxying the API server for pods");
                Some(tokio::spawn(api_proxy::serve(listener, upstream)))
            }
            Err(e) => {
                tracing::info!(error = %e, "not proxying the API server (it may listen on the bridge itself)");
                None
            }
        }
    } else {
        None
    };

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    // Pods reach the API server (or the proxy) at the bridge address.
    let hosts = Arc::new(Hosts::new(
        &args.cluster_domain,
        &gateway.to_string(),
        args.manage_root_hosts,
    ));
    let facts = NodeFacts {
        name: args.node_name.clone(),
        internal_ip: gateway.to_string(),
        pod_cidr: args.pod_cidr.clone(),
        cpu: args.capacity_cpu.clone(),
        memory: args.capacity_memory.clone(),
        pods: args.capacity_pods.clone(),
        kernel: kernel(),
    };
    let ctx = Arc::new(Ctx {
        client,
        args: args.clone(),
        images,
        tools,
        ipam: Mutex::new(ipam),
        gateway,
        prefix,
        api_host,
        api_port,
        hosts: hosts.clone(),
        shutdown: shutdown_rx,
    });

    node::register(&ctx, &facts)
        .await
        .context("registering the node")?;
    let heartbeat = tokio::spawn(node::heartbeat(ctx.clone(), facts));
    let dns = tokio::spawn(dns::run(ctx.clone()));
    let provisioner = args
        .provision_volumes
        .then(|| tokio::spawn(pvc::run(ctx.clone())));
    let sync = tokio::spawn(pod_sync::run(ctx.clone()));

    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: stopping pods");
    let _ = shutdown_tx.send(true);
    let wait = Duration::from_secs(args.shutdown_grace_seconds + 10);
    if let Ok(Ok(workers)) = tokio::time::timeout(wait, sync).await {
        let _ = tokio::time::timeout(wait, futures::future::join_all(workers)).await;
    }
    heartbeat.abort();
    dns.abort();
    if let Some(p) = provisioner {
        p.abort();
    }
    if let Some(p) = proxy {
        p.abort();
    }
    hosts.remove_root_block();
    if args.delete_node_on_exit {
        node::deregister(&ctx, &args.node_name).await;
    }
    tracing::info!("stopped");
    Ok(())
}
