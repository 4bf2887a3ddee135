//! Caps on open connections, in all and per source address: past them a connection is
//! answered at once and closed, so idle or hostile sockets cannot take every descriptor
//! (the log and the database need theirs).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The server holds `max_connections` already.
    Full,
    /// This address holds `max_connections_per_ip` already.
    PerIp,
}

impl Refusal {
    /// The API error code and message of the answer.
    pub(crate) fn code(self) -> (&'static str, &'static str) {
        match self {
            Self::Full => (
                "server_busy",
                "the server has as many connections open as it allows; retry shortly",
            ),
            Self::PerIp => (
                "too_many_connections",
                "this address has as many connections open as one address may; reuse one (keep-alive) or close some",
            ),
        }
    }
}

#[derive(Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

pub(crate) struct ConnCaps {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

impl ConnCaps {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total: max_total.max(1),
            max_per_ip: max_per_ip.max(1),
            open: Mutex::default(),
        })
    }

    /// A slot for one more connection from `ip`, held until the permit drops.
    pub(crate) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            return Err(Refusal::Full);
        }
        let mine = open.per_ip.entry(ip).or_default();
        if *mine >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *mine += 1;
        open.total += 1;
        Ok(ConnPermit {
            caps: self.clone(),
            ip,
        })
    }

    pub(crate) fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

pub(crate) struct ConnPermit {
    caps: Arc<ConnCaps>,
    ip: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut open = self
            .caps
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_address_and_in_all_and_free_on_drop() {
        let caps = ConnCaps::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = caps.try_acquire(a).unwrap();
        let _a2 = caps.try_acquire(a).unwrap();
        assert_eq!(caps.try_acquire(a).err(), Some(Refusal::PerIp));
        let _b1 = caps.try_acquire(b).unwrap();
        assert_eq!(caps.try_acquire(b).err(), Some(Refusal::Full));
        assert_eq!(caps.open(), 3);
        drop(a1);
        assert_eq!(caps.open(), 2);
        let _a3 = caps.try_acquire(a).unwrap();
        drop((_a2, _a3, _b1));
        assert_eq!(caps.open(), 0);
        assert!(
            caps.open.lock().unwrap().per_ip.is_empty(),
            "no address stays counted"
        );
    }
}
