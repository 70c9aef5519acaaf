//! Layer fetches shared between concurrent pulls.
//!
//! Before a pull fetches a layer it claims the layer's chain ID here. The first pull to claim
//! it becomes the owner and fetches, unpacks and commits it; every other pull that needs it
//! meanwhile waits for the owner's outcome instead of fetching it again. Claims for one pull
//! are made together, under one lock, after checking the store, so a layer is never fetched
//! twice by pulls that overlap.
//!
//! Waiting cannot deadlock: every pull commits its layers in chain order, and a pull only ever
//! waits for a layer at or below the one it is about to commit, so the lowest uncommitted layer
//! of any chain always has an owner whose parent is committed.
//!
//! When an owner fails or is cancelled (its ticket dropped without [`Ticket::committed`]),
//! its waiters are told and claim the layer again: one of them becomes the new owner. One
//! cancelled request never fails the others.
//!
//! Every pull also holds the chain IDs it uses (present, owned or awaited) until it ends, so a
//! failed pull can discard the layers it committed only when no other pull is using them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::digest::Digest;

/// Where an owner's work on a layer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Committed,
    Failed,
}

/// The layers being fetched right now, and the pulls using each layer, by chain ID.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    running: HashMap<Digest, watch::Receiver<State>>,
    users: HashMap<Digest, usize>,
}

/// A pull's hold on the chain IDs it uses; released on drop.
#[derive(Debug)]
pub(crate) struct Hold {
    flights: Arc<Flights>,
    chain_ids: Vec<Digest>,
}

/// A pull's claim on one layer.
#[derive(Debug)]
pub(crate) enum Claim {
    /// The layer is already committed.
    Present,
    /// This pull fetches it; the ticket must be marked committed once it is.
    Owner(Ticket),
    /// Another pull is fetching it.
    Wait(Waiter),
}

/// The owner's side of a flight. Dropping it without [`Ticket::committed`] tells the waiters
/// the owner failed.
#[derive(Debug)]
pub(crate) struct Ticket {
    flights: Arc<Flights>,
    chain_id: Digest,
    tx: watch::Sender<State>,
}

/// A waiter's side of a flight.
#[derive(Debug)]
pub(crate) struct Waiter {
    rx: watch::Receiver<State>,
}

impl Flights {
    /// Claims every layer of `chain_ids` that `present` does not report as committed. The
    /// store check and the claims happen under one lock, so an owner that commits and leaves
    /// in between is seen as present rather than fetched again.
    pub(crate) fn claim<E>(
        self: &Arc<Self>,
        chain_ids: &[Digest],
        present: impl FnMut(&Digest) -> Result<bool, E>,
    ) -> Result<(Vec<Claim>, Hold), E> {
        let mut table = self.lock();
        let claims = self.claim_locked(&mut table, chain_ids, present)?;
        for chain_id in chain_ids {
            *table.users.entry(*chain_id).or_default() += 1;
        }
        let hold = Hold {
            flights: Arc::clone(self),
            chain_ids: chain_ids.to_vec(),
        };
        Ok((claims, hold))
    }

    /// Claims one layer again, for a pull that already holds it (its owner failed).
    pub(crate) fn reclaim<E>(
        self: &Arc<Self>,
        chain_id: Digest,
        present: impl FnMut(&Digest) -> Result<bool, E>,
    ) -> Result<Claim, E> {
        let mut table = self.lock();
        let mut claims = self.claim_locked(&mut table, &[chain_id], present)?;
        Ok(claims.pop().expect("one claim per chain ID"))
    }

    /// Runs `discard` on `chain_id` unless another pull uses it or it is being fetched; the
    /// table stays locked meanwhile, so no pull can start using it half-way.
    pub(crate) fn discard_unused<R>(
        &self,
        chain_id: &Digest,
        discard: impl FnOnce() -> R,
    ) -> Option<R> {
        let table = self.lock();
        let users = table.users.get(chain_id).copied().unwrap_or(0);
        (users <= 1 && !table.running.contains_key(chain_id)).then(discard)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .expect("the flight table is never poisoned")
    }

    fn claim_locked<E>(
        self: &Arc<Self>,
        table: &mut Table,
        chain_ids: &[Digest],
        mut present: impl FnMut(&Digest) -> Result<bool, E>,
    ) -> Result<Vec<Claim>, E> {
        let running = &mut table.running;
        let mut claims = Vec::with_capacity(chain_ids.len());
        for chain_id in chain_ids {
            if let Some(rx) = running.get(chain_id) {
                claims.push(Claim::Wait(Waiter { rx: rx.clone() }));
            } else if present(chain_id)? {
                claims.push(Claim::Present);
            } else {
                let (tx, rx) = watch::channel(State::Running);
                running.insert(*chain_id, rx);
                claims.push(Claim::Owner(Ticket {
                    flights: Arc::clone(self),
                    chain_id: *chain_id,
                    tx,
                }));
            }
        }
        Ok(claims)
    }

    /// Layers being fetched now (for metrics and tests).
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().running.len()
    }

    fn finish(&self, chain_id: &Digest, tx: &watch::Sender<State>, state: State) {
        // Leave the table first: a pull that claims after this sees the store (committed) or
        // claims afresh (failed), never a finished flight.
        self.lock().running.remove(chain_id);
        tx.send_replace(state);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut table = self.flights.lock();
        for chain_id in &self.chain_ids {
            if let Some(n) = table.users.get_mut(chain_id) {
                *n -= 1;
                if *n == 0 {
                    table.users.remove(chain_id);
                }
            }
        }
    }
}

impl Ticket {
    /// The layer is committed: waiters go on without fetching it.
    pub(crate) fn committed(self) {
        self.flights
            .finish(&self.chain_id, &self.tx, State::Committed);
        // Drop sees Committed and does nothing more.
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if *self.tx.borrow() == State::Running {
            self.flights.finish(&self.chain_id, &self.tx, State::Failed);
        }
    }
}

impl Waiter {
    /// Waits for the owner: true when the layer was committed, false when the owner failed
    /// (the caller claims the layer again).
    pub(crate) async fn committed(mut self) -> bool {
        match self.rx.wait_for(|s| *s != State::Running).await {
            Ok(state) => *state == State::Committed,
            // The sender is gone without a final state: treat as failed.
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<Digest> {
        (0..n).map(|i| Digest::of(&[i])).collect()
    }

    fn claim(f: &Arc<Flights>, chain: &[Digest], present: &[Digest]) -> Vec<Claim> {
        let (claims, hold) = f.claim::<()>(chain, |c| Ok(present.contains(c))).unwrap();
        std::mem::forget(hold); // these tests look at flights, not holds
        claims
    }

    #[test]
    fn a_layer_is_discarded_only_when_no_other_pull_uses_it() {
        let flights = Arc::new(Flights::default());
        let chain = ids(1);
        let (_, first) = flights.claim::<()>(&chain, |_| Ok(true)).unwrap();
        let (_, second) = flights.claim::<()>(&chain, |_| Ok(true)).unwrap();
        assert_eq!(flights.discard_unused(&chain[0], || ()), None, "two users");
        drop(second);
        assert_eq!(
            flights.discard_unused(&chain[0], || ()),
            Some(()),
            "only the caller"
        );
        drop(first);
        assert!(flights.lock().users.is_empty());
    }

    #[tokio::test]
    async fn the_second_claim_waits_for_the_first_and_sees_its_commit() {
        let flights = Arc::new(Flights::default());
        let chain = ids(3);
        let first = claim(&flights, &chain, &chain[..1]);
        assert!(matches!(first[0], Claim::Present));
        assert!(matches!(first[1], Claim::Owner(_)));
        let second = claim(&flights, &chain, &chain[..1]);
        assert!(matches!(second[0], Claim::Present));
        assert_eq!(flights.in_flight(), 2);
        let mut first = first.into_iter();
        let mut second = second.into_iter();
        let (Some(Claim::Owner(t1)), Some(Claim::Wait(w1))) = (first.nth(1), second.nth(1)) else {
            panic!("owner and waiter expected");
        };
        let waiting = tokio::spawn(w1.committed());
        t1.committed();
        assert!(waiting.await.unwrap(), "the waiter sees the commit");
        assert_eq!(flights.in_flight(), 1);
    }

    #[tokio::test]
    async fn a_failed_owner_releases_the_layer_to_its_waiters() {
        let flights = Arc::new(Flights::default());
        let chain = ids(1);
        let mut owner = claim(&flights, &chain, &[]);
        let Some(Claim::Wait(waiter)) = claim(&flights, &chain, &[]).pop() else {
            panic!("a waiter expected");
        };
        drop(owner.pop()); // the owner fails or is cancelled
        assert!(!waiter.committed().await, "the waiter is told it failed");
        assert_eq!(flights.in_flight(), 0);
        assert!(
            matches!(claim(&flights, &chain, &[]).pop(), Some(Claim::Owner(_))),
            "the layer can be claimed again"
        );
    }
}
