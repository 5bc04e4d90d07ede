//! Broker lifecycle: register, fence, unfence, controlled shutdown, unregister.

use uuid::Uuid;

use super::{MetaResponse, RequestError};
use crate::state_machine::{BrokerRegistration, ClusterMetadata, ListenerEndpoint};

pub(super) fn register(
    md: &mut ClusterMetadata,
    id: i32,
    incarnation: Uuid,
    (host, port): (&str, u16),
    listeners: &[ListenerEndpoint],
    rack: Option<&str>,
) -> Result<MetaResponse, RequestError> {
    if id < 0 {
        return Err(RequestError::InvalidRegistration(format!(
            "broker id {id} is negative"
        )));
    }
    let endpoints =
        std::iter::once((host, port)).chain(listeners.iter().map(|l| (l.host.as_str(), l.port)));
    for (host, port) in endpoints {
        if host.is_empty() || port == 0 {
            return Err(RequestError::InvalidRegistration(format!(
                "endpoint {host:?}:{port} is not routable"
            )));
        }
    }
    if let Some(dup) = listeners
        .iter()
        .enumerate()
        .find(|(i, l)| listeners[..*i].iter().any(|o| o.name == l.name))
    {
        return Err(RequestError::InvalidRegistration(format!(
            "listener {} is named twice",
            dup.1.name
        )));
    }
    if rack.is_some_and(str::is_empty) {
        return Err(RequestError::InvalidRegistration(
            "rack must not be empty".into(),
        ));
    }
    if let Some(existing) = md.brokers.get(&id) {
        if existing.incarnation == incarnation {
            // A retry of the same process's registration.
            return Err(RequestError::AlreadyRegistered {
                id,
                epoch: existing.epoch,
            });
        }
    }
    // A new incarnation replaces the old one. The restarted process may have lost unflushed
    // records, so it leaves every ISR like a fenced broker before it registers fenced.
    md.remove_broker_from_partitions(id);
    let epoch = md.metadata_offset;
    md.brokers.insert(
        id,
        BrokerRegistration {
            id,
            incarnation,
            epoch,
            host: host.to_string(),
            port,
            listeners: listeners.to_vec(),
            rack: rack.map(str::to_string),
            fenced: true,
            shutting_down: false,
        },
    );
    Ok(MetaResponse::BrokerRegistered { epoch })
}

pub(super) fn unregister(md: &mut ClusterMetadata, id: i32) -> Result<MetaResponse, RequestError> {
    if md.brokers.remove(&id).is_none() {
        return Err(RequestError::UnknownBroker(id));
    }
    let count = md.remove_broker_from_partitions(id);
    Ok(MetaResponse::PartitionsChanged { count })
}

pub(super) fn fence(md: &mut ClusterMetadata, id: i32) -> Result<MetaResponse, RequestError> {
    let broker = md
        .brokers
        .get_mut(&id)
        .ok_or(RequestError::UnknownBroker(id))?;
    if broker.fenced {
        return Err(RequestError::AlreadyFenced(id));
    }
    broker.fenced = true;
    let count = md.remove_broker_from_partitions(id);
    Ok(MetaResponse::PartitionsChanged { count })
}

pub(super) fn unfence(md: &mut ClusterMetadata, id: i32) -> Result<MetaResponse, RequestError> {
    let broker = md
        .brokers
        .get_mut(&id)
        .ok_or(RequestError::UnknownBroker(id))?;
    if !broker.fenced {
        return Err(RequestError::NotFenced(id));
    }
    broker.fenced = false;
    // Partitions that lost every eligible ISR member wait leaderless for one to come back.
    let count = md.elect_for_leaderless(id);
    Ok(MetaResponse::PartitionsChanged { count })
}

pub(super) fn shut_down(md: &mut ClusterMetadata, id: i32) -> Result<MetaResponse, RequestError> {
    let broker = md
        .brokers
        .get_mut(&id)
        .ok_or(RequestError::UnknownBroker(id))?;
    if broker.shutting_down {
        return Err(RequestError::AlreadyShuttingDown(id));
    }
    broker.shutting_down = true;
    let count = md.remove_broker_from_partitions(id);
    Ok(MetaResponse::PartitionsChanged { count })
}
