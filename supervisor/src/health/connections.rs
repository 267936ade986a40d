//! Which connections the health listener keeps open.
//!
//! Every connection is accepted as soon as its first bytes arrive, so that a fresh probe never waits behind
//! held connections in the kernel's queue. At most `limit` stay open (memory and file descriptors stay
//! bounded): a connection arriving when all are taken closes one, the least recently active connection of
//! the peer address that holds the most (the newcomer counted). Idle keep-alive connections and headers
//! that never end go stale and are closed first, and one source flooding the listener mostly displaces its
//! own connections, never a caller that just arrived from elsewhere.
//!
//! Deferring the accept until the first bytes (see `http::bind`) means a connection is never a candidate
//! for closing before its request could be read, and silent connections wait in the kernel, not here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::task::AbortHandle;

/// When a connection last made progress (accepted, or a whole request arrived): shared with its task.
#[derive(Clone)]
pub struct Activity {
    epoch: Instant,
    nanos: Arc<AtomicU64>,
}

impl Activity {
    pub fn touch(&self) {
        self.nanos.store(since(self.epoch), Ordering::Relaxed);
    }

    fn last(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }
}

fn since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

struct Open {
    source: Source,
    /// How many connections `source` holds, shared by all of them: choosing whom to close needs no lookups.
    held: Arc<AtomicUsize>,
    activity: Activity,
    task: AbortHandle,
}

/// Who holds a connection: the peer's IPv4 address, or its IPv6 /64 (one host usually has a whole /64).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Source {
    V4(u32),
    V6(u64),
}

impl Source {
    fn of(peer: IpAddr) -> Source {
        match peer {
            IpAddr::V4(v4) => Source::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.into()),
                None => Source::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

pub struct Connections {
    limit: usize,
    epoch: Instant,
    open: Vec<Open>,
    held: HashMap<Source, Arc<AtomicUsize>>,
}

impl Connections {
    pub fn new(limit: usize) -> Connections {
        assert!(limit > 0, "a listener keeps at least one connection");
        Connections {
            limit,
            epoch: Instant::now(),
            open: Vec::with_capacity(limit),
            held: HashMap::new(),
        }
    }

    /// The activity of a connection accepted now.
    pub fn activity(&self) -> Activity {
        Activity {
            epoch: self.epoch,
            nanos: Arc::new(AtomicU64::new(since(self.epoch))),
        }
    }

    /// Called for a connection just accepted from `peer`, before [`add`](Self::add): when all slots are
    /// taken, aborts the task of the connection to close (dropping its socket) and returns true.
    pub fn make_room(&mut self, peer: IpAddr) -> bool {
        if self.open.len() < self.limit {
            return false;
        }
        // Connections that ended by themselves leave their entry behind until now.
        let mut i = 0;
        while i < self.open.len() {
            if self.open[i].task.is_finished() {
                self.remove(i);
            } else {
                i += 1;
            }
        }
        if self.open.len() < self.limit {
            return false;
        }
        let victim = self.victim(Source::of(peer));
        self.remove(victim).abort();
        true
    }

    pub fn add(&mut self, peer: IpAddr, activity: Activity, task: AbortHandle) {
        let source = Source::of(peer);
        let held = self.held.entry(source).or_default().clone();
        held.fetch_add(1, Ordering::Relaxed);
        self.open.push(Open {
            source,
            held,
            activity,
            task,
        });
    }

    fn remove(&mut self, i: usize) -> AbortHandle {
        let gone = self.open.swap_remove(i);
        if gone.held.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.held.remove(&gone.source);
        }
        gone.task
    }

    /// The least recently active connection among those of the sources holding the most, the newcomer's
    /// own source counted with the newcomer.
    fn victim(&self, newcomer: Source) -> usize {
        let holds = |c: &Open| c.held.load(Ordering::Relaxed) + usize::from(c.source == newcomer);
        let most = self.open.iter().map(holds).max().unwrap_or(0);
        // Never empty: a full table has a connection of a source holding at least as many as the newcomer's.
        self.open
            .iter()
            .enumerate()
            .filter(|(_, c)| holds(c) == most)
            .min_by_key(|(_, c)| c.activity.last())
            .map(|(i, _)| i)
            .expect("a full table has a connection of a source holding the most")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Table {
        connections: Connections,
        runtime: tokio::runtime::Runtime,
        /// Each connection's stand-in task, in the order added.
        tasks: Vec<AbortHandle>,
    }

    impl Table {
        fn new(limit: usize) -> Table {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            Table {
                connections: Connections::new(limit),
                runtime,
                tasks: Vec::new(),
            }
        }

        /// Accepts a connection from `peer` whose last activity is `at` ns after the epoch; returns whether
        /// another was closed to make room.
        fn accept(&mut self, peer: &str, at: u64) -> bool {
            let peer: IpAddr = peer.parse().unwrap();
            let evicted = self.connections.make_room(peer);
            let activity = self.connections.activity();
            activity.nanos.store(at, Ordering::Relaxed);
            let task = self
                .runtime
                .spawn(std::future::pending::<()>())
                .abort_handle();
            self.tasks.push(task.clone());
            self.connections.add(peer, activity, task);
            evicted
        }

        /// Indexes (in accept order) of the connections closed so far.
        fn closed(&self) -> Vec<usize> {
            // An aborted task finishes once the runtime has run it.
            self.runtime.block_on(tokio::task::yield_now());
            (0..self.tasks.len())
                .filter(|&i| self.tasks[i].is_finished())
                .collect()
        }
    }

    #[test]
    fn room_is_made_only_when_every_slot_is_taken() {
        let mut table = Table::new(3);
        assert!(!table.accept("192.0.2.1", 10));
        assert!(!table.accept("192.0.2.2", 20));
        assert!(!table.accept("192.0.2.3", 30));
        assert!(table.closed().is_empty());
        // A fourth from a new address: every address holds one, the newcomer too; the stalest goes.
        assert!(table.accept("192.0.2.4", 40));
        assert_eq!(table.closed(), vec![0]);
    }

    #[test]
    fn the_source_holding_the_most_loses_its_stalest_connection() {
        let mut table = Table::new(4);
        table.accept("192.0.2.1", 5); // the stalest of all, but its address holds one
        table.accept("198.51.100.7", 30);
        table.accept("198.51.100.7", 20);
        table.accept("198.51.100.7", 40);
        // A probe from elsewhere: the flooding address gives up its stalest connection.
        assert!(table.accept("127.0.0.1", 50));
        assert_eq!(table.closed(), vec![2]);
        // The flooding address again: counting the newcomer it still holds the most, and loses its stalest.
        assert!(table.accept("198.51.100.7", 60));
        assert_eq!(table.closed(), vec![1, 2]);
    }

    #[test]
    fn a_newcomer_ties_against_its_own_address() {
        let mut table = Table::new(4);
        table.accept("192.0.2.1", 10);
        table.accept("192.0.2.1", 20);
        table.accept("198.51.100.7", 5);
        table.accept("198.51.100.7", 6);
        // Both hold 2; counting the newcomer, 192.0.2.1 holds the most, though the other's are staler.
        assert!(table.accept("192.0.2.1", 30));
        assert_eq!(table.closed(), vec![0]);
    }

    #[test]
    fn finished_connections_free_their_slot() {
        let mut table = Table::new(2);
        table.accept("192.0.2.1", 10);
        table.accept("192.0.2.2", 20);
        table.tasks[0].abort();
        assert_eq!(table.closed(), vec![0]);
        assert!(!table.accept("192.0.2.3", 30), "a slot was free");
        assert_eq!(table.closed(), vec![0]);
    }

    #[test]
    fn ipv6_hosts_count_by_their_64() {
        let a = Source::of("2001:db8:1:2::1".parse().unwrap());
        let b = Source::of("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = Source::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let v4 = Source::of("10.0.0.1".parse().unwrap());
        let mapped = Source::of("::ffff:10.0.0.1".parse().unwrap());
        assert_eq!(v4, mapped);
        assert_ne!(
            Source::of("::".parse().unwrap()),
            Source::of("0.0.0.0".parse().unwrap())
        );
    }
}
