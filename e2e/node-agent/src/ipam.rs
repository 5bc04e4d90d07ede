//! Pod IP allocation from the pod CIDR. The first address belongs to the bridge.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct Ipam {
    network: u32,
    prefix: u8,
    by_pod: BTreeMap<String, Ipv4Addr>,
}

impl Ipam {
    /// `cidr` like `10.244.0.0/24`; prefixes longer than /30 leave no pod addresses.
    pub fn new(cidr: &str) -> Result<Self> {
        let bad = || Error::Invalid(format!("pod CIDR `{cidr}`: want a.b.c.d/n with n <= 30"));
        let (addr, prefix) = cidr.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Ipam {
            network: u32::from(addr) & mask,
            prefix,
            by_pod: BTreeMap::new(),
        })
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The bridge's address: the first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    fn broadcast(&self) -> u32 {
        self.network | (u32::MAX >> self.prefix)
    }

    /// The address of pod `uid`, allocating the lowest free one on first use.
    pub fn allocate(&mut self, uid: &str) -> Option<Ipv4Addr> {
        if let Some(ip) = self.by_pod.get(uid) {
            return Some(*ip);
        }
        let used: std::collections::BTreeSet<Ipv4Addr> = self.by_pod.values().copied().collect();
        let ip = (self.network + 2..self.broadcast())
            .map(Ipv4Addr::from)
            .find(|ip| !used.contains(ip))?;
        self.by_pod.insert(uid.to_string(), ip);
        Some(ip)
    }

    pub fn release(&mut self, uid: &str) {
        self.by_pod.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_address_after_gateway_and_reuses_released() {
        let mut ipam = Ipam::new("10.244.0.0/24").expect("cidr");
        assert_eq!(ipam.gateway(), Ipv4Addr::new(10, 244, 0, 1));
        assert_eq!(ipam.allocate("a"), Some(Ipv4Addr::new(10, 244, 0, 2)));
        assert_eq!(ipam.allocate("b"), Some(Ipv4Addr::new(10, 244, 0, 3)));
        assert_eq!(ipam.allocate("a"), Some(Ipv4Addr::new(10, 244, 0, 2)));
        ipam.release("a");
        assert_eq!(ipam.allocate("c"), Some(Ipv4Addr::new(10, 244, 0, 2)));
    }

    #[test]
    fn exhausts_without_handing_out_broadcast() {
        let mut ipam = Ipam::new("10.0.0.0/30").expect("cidr");
        assert_eq!(ipam.allocate("a"), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(ipam.allocate("b"), None);
    }

    #[test]
    fn rejects_malformed_cidr() {
        assert!(Ipam::new("10.0.0.0").is_err());
        assert!(Ipam::new("10.0.0.0/31").is_err());
        assert!(Ipam::new("x/24").is_err());
    }
}
