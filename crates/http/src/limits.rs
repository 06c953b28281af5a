//! The connection caps: at most so many connections in total and per
//! client, counted from accept to close.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;

use crate::stats::Refusal;

/// A client, as far as the per-IP cap goes: an IPv4 address, or an IPv6
/// /64 (the smallest block an IPv6 host is usually given, so a host can
/// use any address in it). IPv4-mapped IPv6 addresses count as IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    V4(Ipv4Addr),
    V6Prefix(u64),
}

impl ClientKey {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => ClientKey::V6Prefix((v6.to_bits() >> 64) as u64),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_client: HashMap<ClientKey, usize>,
}

/// Open connections, in total and per client.
#[derive(Debug)]
pub(crate) struct ConnTable {
    counts: Mutex<Counts>,
    max_total: usize,
    max_per_client: usize,
    open: Gauge,
}

impl ConnTable {
    pub(crate) fn new(max_total: usize, max_per_client: usize, open: Gauge) -> Self {
        ConnTable {
            counts: Mutex::new(Counts::default()),
            max_total,
            max_per_client,
            open,
        }
    }

    /// Counts a new connection from `ip`, or says which cap is full.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refusal> {
        let key = ClientKey::of(ip);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let mine = counts.per_client.entry(key).or_insert(0);
        if *mine >= self.max_per_client {
            return Err(Refusal::PerIp);
        }
        *mine += 1;
        counts.total += 1;
        self.open.inc();
        Ok(ConnPermit {
            table: Arc::clone(self),
            key,
        })
    }
}

/// One counted connection; dropping it uncounts it.
#[derive(Debug)]
pub(crate) struct ConnPermit {
    table: Arc<ConnTable>,
    key: ClientKey,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut counts = self.table.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total -= 1;
        if let Some(n) = counts.per_client.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.per_client.remove(&self.key);
            }
        }
        self.table.open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            ClientKey::of(mapped),
            ClientKey::V4(Ipv4Addr::new(192, 0, 2, 7))
        );
    }

    #[test]
    fn caps_refuse_by_client_then_in_total_and_closing_frees_a_place() {
        let table = Arc::new(ConnTable::new(3, 2, Gauge::default()));
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        let a = table.admit(one).unwrap();
        let _b = table.admit(one).unwrap();
        assert_eq!(table.admit(one).unwrap_err(), Refusal::PerIp);
        let _c = table.admit(two).unwrap();
        assert_eq!(table.admit(two).unwrap_err(), Refusal::Total);
        drop(a);
        assert_eq!(table.open.get(), 2);
        let _d = table.admit(one).unwrap();
        assert_eq!(table.counts.lock().unwrap().per_client.len(), 2);
    }
}
