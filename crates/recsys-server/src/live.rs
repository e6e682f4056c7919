//! The live state of one replica: what each user did recently (live events), in memory and
//! bounded, fed by this replica's own writes at once and by the poller of the
//! recent-events collection for what other replicas wrote.
//!
//! # Bounds
//!
//! * at most [`LiveLimits::max_users`] users: adding one more evicts the user whose last
//!   event is the oldest (least recently active first);
//! * at most [`LiveLimits::max_events_per_user`] products per user: the oldest is dropped
//!   (a product seen again moves to the newest position instead of counting twice);
//! * nothing older than [`LiveLimits::max_age`]: [`LiveState::prune`] (run by the poller)
//!   drops users whose last event is older, reads skip older events;
//! * the ids of applied recent-event batches are remembered only while the poller can
//!   still read them again (its look-back window), to apply each batch once.
//!
//! So memory is at most about `max_users × max_events_per_user` product ids plus the ids
//! of the batches of one poll window.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::RwLock;
use std::time::Duration;

use recsys_features::ExternalId;

/// The bounds of a [`LiveState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveLimits {
    /// Most users kept (least recently active evicted first).
    pub max_users: usize,
    /// Most products kept per user (oldest dropped first).
    pub max_events_per_user: usize,
    /// Events older than this are forgotten.
    pub max_age: Duration,
}

impl Default for LiveLimits {
    fn default() -> Self {
        LiveLimits {
            max_users: 100_000,
            max_events_per_user: 50,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug)]
struct UserEvents {
    /// (product, time of the event in ms), oldest first, each product once.
    items: VecDeque<(ExternalId, i64)>,
    /// This user's key in [`Inner::by_age`].
    age_key: (i64, u64),
}

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<ExternalId, UserEvents>,
    /// (time of the user's last event in ms, tie-breaker) → user: eviction order.
    by_age: BTreeMap<(i64, u64), ExternalId>,
    counter: u64,
    /// Applied recent-event batch ids → their time (ms).
    applied: HashMap<String, i64>,
    evicted_users: u64,
}

/// Recent products per user, bounded. `Send + Sync`; reads take a shared lock for the copy
/// of one user's list.
///
/// * at most [`LiveLimits::max_users`] users: adding one more evicts the user whose last
///   event is the oldest (least recently active first);
/// * at most [`LiveLimits::max_events_per_user`] products per user: the oldest is dropped
///   (a product seen again moves to the newest position instead of counting twice);
/// * nothing older than [`LiveLimits::max_age`]: [`LiveState::prune`] (run by the poller)
///   drops users whose last event is older, reads skip older events;
/// * the ids of applied recent-event batches are remembered only while the poller can
///   still read them again (its look-back window), to apply each batch once.
///
/// So memory is at most about `max_users × max_events_per_user` product ids plus the ids
/// of the batches of one poll window.
#[derive(Debug)]
pub struct LiveState {
    limits: LiveLimits,
    inner: RwLock<Inner>,
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveCounts {
    /// Users with live events.
    pub users: usize,
    /// Products held over all users.
    pub events: usize,
    /// Users evicted to stay within [`LiveLimits::max_users`] or by age.
    pub evicted_users: u64,
}

impl LiveState {
    /// An empty state with these bounds (each at least 1).
    pub fn new(limits: LiveLimits) -> LiveState {
        LiveState {
            limits: LiveLimits {
                max_users: limits.max_users.max(1),
                max_events_per_user: limits.max_events_per_user.max(1),
                max_age: limits.max_age,
            },
            inner: RwLock::new(Inner::default()),
        }
    }

    /// The bounds.
    pub fn limits(&self) -> LiveLimits {
        self.limits
    }

    fn max_age_ms(&self) -> i64 {
        i64::try_from(self.limits.max_age.as_millis()).unwrap_or(i64::MAX)
    }

    /// Records events `(user, product)` that happened at `at_ms` (Unix milliseconds).
    pub fn record<'a>(
        &self,
        events: impl IntoIterator<Item = (&'a ExternalId, &'a ExternalId)>,
        at_ms: i64,
    ) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for (user, product) in events {
            self.add(&mut inner, user, product, at_ms);
        }
    }

    fn add(&self, inner: &mut Inner, user: &ExternalId, product: &ExternalId, at_ms: i64) {
        inner.counter += 1;
        let counter = inner.counter;
        let new_key = |old: (i64, u64)| (old.0.max(at_ms), counter);
        if let Some(events) = inner.users.get_mut(user) {
            if let Some(at) = events.items.iter().position(|(p, _)| p == product) {
                events.items.remove(at);
            }
            events.items.push_back((product.clone(), at_ms));
            while events.items.len() > self.limits.max_events_per_user {
                events.items.pop_front();
            }
            let old = events.age_key;
            let key = new_key(old);
            events.age_key = key;
            inner.by_age.remove(&old);
            inner.by_age.insert(key, user.clone());
            return;
        }
        while inner.users.len() >= self.limits.max_users {
            let Some((_, oldest)) = inner.by_age.pop_first() else {
                break;
            };
            inner.users.remove(&oldest);
            inner.evicted_users += 1;
        }
        let key = (at_ms, counter);
        inner.by_age.insert(key, user.clone());
        inner.users.insert(
            user.clone(),
            UserEvents {
                items: VecDeque::from([(product.clone(), at_ms)]),
                age_key: key,
            },
        );
    }

    /// Applies a batch another replica (or this one) stored, once: `false` when a batch
    /// with this id was applied already.
    pub fn apply_batch(&self, id: &str, at_ms: i64, events: &[(ExternalId, ExternalId)]) -> bool {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner.applied.contains_key(id) {
            return false;
        }
        inner.applied.insert(id.to_string(), at_ms);
        for (user, product) in events {
            self.add(&mut inner, user, product, at_ms);
        }
        true
    }

    /// Marks a batch id as applied (this replica's own batch, recorded at once).
    pub fn mark_applied(&self, id: String, at_ms: i64) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.applied.insert(id, at_ms);
    }

    /// The user's recent products, oldest first, none older than the maximum age at
    /// `now_ms`.
    pub fn recent(&self, user: &ExternalId, now_ms: i64) -> Vec<ExternalId> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let cutoff = now_ms.saturating_sub(self.max_age_ms());
        inner.users.get(user).map_or_else(Vec::new, |events| {
            events
                .items
                .iter()
                .filter(|(_, at)| *at >= cutoff)
                .map(|(p, _)| p.clone())
                .collect()
        })
    }

    /// Forgets users whose last event is older than the maximum age at `now_ms`, and
    /// batch ids older than `applied_before_ms` (the poller will not read them again).
    pub fn prune(&self, now_ms: i64, applied_before_ms: i64) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let cutoff = now_ms.saturating_sub(self.max_age_ms());
        while let Some(entry) = inner.by_age.first_entry() {
            if entry.key().0 >= cutoff {
                break;
            }
            let user = entry.remove();
            inner.users.remove(&user);
            inner.evicted_users += 1;
        }
        inner.applied.retain(|_, at| *at >= applied_before_ms);
    }

    /// Users, events held and evictions.
    pub fn counts(&self) -> LiveCounts {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        LiveCounts {
            users: inner.users.len(),
            events: inner.users.values().map(|u| u.items.len()).sum(),
            evicted_users: inner.evicted_users,
        }
    }

    /// The ids of applied batches stored at `since_ms` or later (a poll skips them).
    pub fn applied_ids(&self, since_ms: i64) -> Vec<String> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .applied
            .iter()
            .filter(|(_, at)| **at >= since_ms)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Number of applied batch ids remembered.
    pub fn applied_batches(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .applied
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(v: i64) -> ExternalId {
        ExternalId::Int(v)
    }

    #[test]
    fn users_and_events_stay_within_their_bounds() {
        let live = LiveState::new(LiveLimits {
            max_users: 3,
            max_events_per_user: 2,
            max_age: Duration::from_secs(10),
        });
        for u in 0..5 {
            live.record([(&id(u), &id(100)), (&id(u), &id(101))], 1_000 + u);
        }
        let counts = live.counts();
        assert_eq!(
            (counts.users, counts.events, counts.evicted_users),
            (3, 6, 2)
        );
        // The least recently active went first.
        assert!(live.recent(&id(0), 2_000).is_empty());
        assert_eq!(live.recent(&id(4), 2_000), vec![id(100), id(101)]);
        // A user seen again is not evicted next; a repeated product moves to the end.
        live.record([(&id(2), &id(100))], 3_000);
        live.record([(&id(9), &id(5))], 3_001);
        assert_eq!(live.recent(&id(2), 3_001), vec![id(101), id(100)]);
        assert!(live.recent(&id(3), 3_001).is_empty(), "3 was the oldest");
        live.record([(&id(2), &id(102))], 3_002);
        assert_eq!(live.recent(&id(2), 3_002), vec![id(100), id(102)]);
        // Age: reads skip old events, prune forgets old users.
        assert!(live.recent(&id(4), 11_005).is_empty());
        live.prune(12_500, 0);
        assert_eq!(live.counts().users, 2);
        live.prune(20_000, 0);
        assert_eq!(live.counts().users, 0);
    }

    #[test]
    fn a_batch_is_applied_once() {
        let live = LiveState::new(LiveLimits::default());
        let events = vec![(id(1), id(10))];
        assert!(live.apply_batch("w:1", 5, &events));
        assert!(!live.apply_batch("w:1", 5, &events));
        live.mark_applied("w:2".into(), 6);
        assert!(!live.apply_batch("w:2", 6, &events));
        live.prune(7, 6);
        assert_eq!(live.applied_batches(), 1);
        assert!(
            live.apply_batch("w:1", 5, &events),
            "forgotten after the window"
        );
    }
}
