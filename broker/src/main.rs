//! `spate-broker`: wiring only — configuration, logging, signals.
use std::path::PathBuf;

use clap::Parser;
use spate_broker::config::BrokerConfig;
use spate_broker::observability::telemetry;
use spate_broker::security::scram_bootstrap::BootstrapScram;
use spate_broker::{Broker, Controller};

/// A Kafka wire-compatible event streaming broker.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// A server.properties-style file (key=value lines).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on (the `listeners` setting).
    #[arg(long)]
    listen: Option<String>,
    /// Where logs live (the `log.dirs` setting).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// This broker's id (the `node.id` setting).
    #[arg(long)]
    node_id: Option<i32>,
    /// Any setting, as key=value; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// A SCRAM credential to store unless the user has one for that mechanism, as
    /// `kafka-storage format --add-scram`: 'SCRAM-SHA-512=[name=admin,password=secret]';
    /// repeatable. The environment variable SPATE_ADD_SCRAM (one per line) keeps passwords out
    /// of the process list.
    #[arg(long = "add-scram", value_name = "MECHANISM=[name=..,password=..]")]
    add_scram: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut overrides = Vec::new();
    for kv in &cli.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--set expects KEY=VALUE, got `{kv}`"))?;
        overrides.push((k.trim().to_string(), v.trim().to_string()));
    }
    if let Some(l) = &cli.listen {
        overrides.push(("listeners".into(), l.clone()));
    }
    if let Some(d) = &cli.data_dir {
        overrides.push(("log.dirs".into(), d.display().to_string()));
    }
    if let Some(n) = cli.node_id {
        overrides.push(("node.id".into(), n.to_string()));
    }
    let mut config = BrokerConfig::load(cli.config.as_deref(), std::env::vars(), overrides)?;
    let from_env = std::env::var("SPATE_ADD_SCRAM").unwrap_or_default();
    for spec in cli
        .add_scram
        .iter()
        .map(String::as_str)
        .chain(from_env.lines())
        .filter(|s| !s.trim().is_empty())
    {
        config.bootstrap_scram.push(BootstrapScram::parse(spec)?);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            // Inside the runtime: the OTLP exporter's gRPC channel runs on it.
            let telemetry = telemetry::init(config.json_logs, config.node_id);
            let result = run(config).await;
            telemetry.shutdown();
            result
        })
}

async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    if config.controller_only() {
        return run_controller(config).await;
    }
    let data_dir = config.data_dir.clone();
    let broker = Broker::start(config).await?;
    let http = broker
        .http_addr
        .map(|a| a.to_string())
        .unwrap_or_else(|| "off".into());
    let listeners: Vec<String> = broker
        .listeners
        .iter()
        .map(|(name, addr)| format!("{name}://{addr}"))
        .collect();
    tracing::info!(addr = %broker.local_addr, listeners = %listeners.join(","), %http, data_dir = %data_dir.display(), "spate broker listening");
    wait_for_signal().await?;
    // Cluster mode: leaderships move to other in-sync replicas first.
    broker.controlled_shutdown().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// `process.roles=controller`: a metadata voter and controller, no Kafka listener.
async fn run_controller(config: BrokerConfig) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let controller = Controller::start(config).await?;
    let http = controller
        .http_addr
        .map(|a| a.to_string())
        .unwrap_or_else(|| "off".into());
    tracing::info!(raft = %controller.raft_addr, %http, data_dir = %data_dir.display(), "spate controller running");
    wait_for_signal().await?;
    controller.shutdown().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
    Ok(())
}
