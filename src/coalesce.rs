//! Request coalescing inside one process (singleflight).
//!
//! Requests for the same `(key, set)` that are in flight in this process at
//! the same time share one read, one claim and one processing run: the
//! first becomes the leader, the others wait for its outcome. The leader
//! *seals* the flight just before it publishes the answering event, so a
//! request that arrives after that starts a new flight (and gets an event
//! published after it arrived). If the leader panics, fails or is
//! cancelled, dropping its [`Leader`] tells the followers so: none hangs,
//! none starts a second run on its own.
//!
//! A leader that answers without publishing (it leaves the answer to
//! another request's run, or parks) decided on the item as it last read
//! it. That decision holds for the followers that joined before that read;
//! one that joined after it may have been sent after the run it would wait
//! for had already answered, so it is told to handle its request again
//! ([`FlightOutcome::Again`]) instead of being deleted unanswered.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// What a follower learns from its leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlightOutcome {
    /// The leader's outcome answers the follower's request too.
    Answered,
    /// The leader gave up (error, panic, cancellation): return the message
    /// to the queue.
    Abandoned,
    /// The leader's answer was decided on a read older than this request:
    /// handle it again.
    Again,
}

struct Flight {
    followers: Vec<(String, oneshot::Sender<FlightOutcome>)>,
}

/// The flights in progress, by key.
pub struct Coalescer<K> {
    flights: Arc<Mutex<HashMap<K, Flight>>>,
}

impl<K> Default for Coalescer<K> {
    fn default() -> Self {
        Coalescer {
            flights: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// The role a request gets when it joins.
pub enum Role<K: Eq + Hash + Clone> {
    Leader(Leader<K>),
    Follower(oneshot::Receiver<FlightOutcome>),
}

/// The leader of a flight. Dropping it without [`Leader::finish`]
/// abandons the flight.
pub struct Leader<K: Eq + Hash + Clone> {
    key: K,
    flights: Arc<Mutex<HashMap<K, Flight>>>,
    sealed: Option<Vec<(String, oneshot::Sender<FlightOutcome>)>>,
    /// How many followers had joined when the leader last read the item.
    read_by: usize,
}

impl<K: Eq + Hash + Clone> Coalescer<K> {
    /// Joins the flight for `key` as `request_id`.
    pub fn join(&self, key: K, request_id: String) -> Role<K> {
        let mut flights = self.flights.lock().expect("coalescer lock");
        if let Some(flight) = flights.get_mut(&key) {
            let (tx, rx) = oneshot::channel();
            flight.followers.push((request_id, tx));
            return Role::Follower(rx);
        }
        flights.insert(
            key.clone(),
            Flight {
                followers: Vec::new(),
            },
        );
        Role::Leader(Leader {
            key,
            flights: self.flights.clone(),
            sealed: None,
            read_by: 0,
        })
    }

    /// Flights in progress (for tests and metrics).
    pub fn len(&self) -> usize {
        self.flights.lock().expect("coalescer lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash + Clone> Leader<K> {
    /// Closes the flight to newcomers and returns the request ids of its
    /// followers so far. Idempotent.
    pub fn seal(&mut self) -> Vec<String> {
        if self.sealed.is_none() {
            let flight = self
                .flights
                .lock()
                .expect("coalescer lock")
                .remove(&self.key);
            self.sealed = Some(flight.map(|f| f.followers).unwrap_or_default());
        }
        self.sealed
            .as_ref()
            .map(|f| f.iter().map(|(rid, _)| rid.clone()).collect())
            .unwrap_or_default()
    }

    /// If `owner` is one of the followers, swaps places with it: the
    /// leader goes on as `owner` (the request that owns the item's run,
    /// redelivered after its process died) and `me` becomes the follower
    /// entry, so that the answering event names `owner` and lists `me` as
    /// coalesced. Returns whether `owner` was found.
    pub fn adopt(&mut self, owner: &str, me: &str) -> bool {
        let swap = |followers: &mut Vec<(String, oneshot::Sender<FlightOutcome>)>| match followers
            .iter_mut()
            .find(|(rid, _)| rid == owner)
        {
            Some(entry) => {
                entry.0 = me.to_owned();
                true
            }
            None => false,
        };
        match self.sealed.as_mut() {
            Some(sealed) => swap(sealed),
            None => self
                .flights
                .lock()
                .expect("coalescer lock")
                .get_mut(&self.key)
                .is_some_and(|f| swap(&mut f.followers)),
        }
    }

    /// Whether the leader published an answering event (sealed the
    /// flight): its followers are named in it.
    pub fn published(&self) -> bool {
        self.sealed.is_some()
    }

    /// The leader is about to read the item (or write it, which returns
    /// it): what it decides next holds for the followers so far.
    pub fn reading(&mut self) {
        if self.sealed.is_none() {
            self.read_by = self
                .flights
                .lock()
                .expect("coalescer lock")
                .get(&self.key)
                .map_or(0, |f| f.followers.len());
        }
    }

    /// Ends the flight, telling every follower `outcome`. Returns how many
    /// followers there were. A flight answered without an event (not
    /// sealed by a publish) tells the followers that joined after the
    /// leader's last read to handle their request [`FlightOutcome::Again`].
    pub fn finish(mut self, outcome: FlightOutcome) -> usize {
        let published = self.sealed.is_some();
        self.seal();
        // Leave `sealed` as `Some` so that `drop` does not touch the map
        // again (a newcomer may have started a new flight there).
        let followers = std::mem::take(self.sealed.as_mut().expect("sealed"));
        let n = followers.len();
        for (i, (_, tx)) in followers.into_iter().enumerate() {
            let late = !published && i >= self.read_by;
            let told = match outcome {
                FlightOutcome::Answered if late => FlightOutcome::Again,
                other => other,
            };
            let _ = tx.send(told);
        }
        n
    }
}

impl<K: Eq + Hash + Clone> Drop for Leader<K> {
    fn drop(&mut self) {
        if self.sealed.is_none() {
            self.seal();
        }
        for (_, tx) in std::mem::take(self.sealed.as_mut().expect("sealed")) {
            let _ = tx.send(FlightOutcome::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_share_the_leaders_outcome() {
        let c = Coalescer::default();
        let Role::Leader(mut leader) = c.join("k", "r1".into()) else {
            panic!()
        };
        let Role::Follower(f1) = c.join("k", "r2".into()) else {
            panic!()
        };
        let Role::Follower(f2) = c.join("k", "r3".into()) else {
            panic!()
        };
        leader.reading();
        assert_eq!(leader.finish(FlightOutcome::Answered), 2);
        assert_eq!(f1.await.unwrap(), FlightOutcome::Answered);
        assert_eq!(f2.await.unwrap(), FlightOutcome::Answered);
        assert!(c.is_empty());
    }

    #[tokio::test]
    async fn a_follower_that_joined_after_the_last_read_handles_its_request_again() {
        let c = Coalescer::default();
        let Role::Leader(mut leader) = c.join("k", "r1".into()) else {
            panic!()
        };
        let Role::Follower(before) = c.join("k", "r2".into()) else {
            panic!()
        };
        leader.reading();
        let Role::Follower(after) = c.join("k", "r3".into()) else {
            panic!()
        };
        // Answered without an event (left to another run, or parked): the
        // late follower may have been sent after that run answered.
        leader.finish(FlightOutcome::Answered);
        assert_eq!(before.await.unwrap(), FlightOutcome::Answered);
        assert_eq!(after.await.unwrap(), FlightOutcome::Again);
    }

    #[tokio::test]
    async fn a_published_answer_answers_every_follower_it_names() {
        let c = Coalescer::default();
        let Role::Leader(mut leader) = c.join("k", "r1".into()) else {
            panic!()
        };
        leader.reading();
        let Role::Follower(after) = c.join("k", "r2".into()) else {
            panic!()
        };
        assert_eq!(leader.seal(), vec!["r2".to_string()]);
        leader.finish(FlightOutcome::Answered);
        assert_eq!(after.await.unwrap(), FlightOutcome::Answered);
    }

    #[tokio::test]
    async fn a_sealed_flight_takes_no_newcomers() {
        let c = Coalescer::default();
        let Role::Leader(mut leader) = c.join("k", "r1".into()) else {
            panic!()
        };
        let Role::Follower(_f) = c.join("k", "r2".into()) else {
            panic!()
        };
        assert_eq!(leader.seal(), vec!["r2".to_string()]);
        assert!(matches!(c.join("k", "r3".into()), Role::Leader(_)));
    }

    #[tokio::test]
    async fn the_leader_can_take_the_place_of_a_following_owner() {
        let c = Coalescer::default();
        let Role::Leader(mut leader) = c.join("k", "r1".into()) else {
            panic!()
        };
        let Role::Follower(owner) = c.join("k", "owner".into()) else {
            panic!()
        };
        assert!(!leader.adopt("nobody", "r1"));
        assert!(leader.adopt("owner", "r1"));
        assert_eq!(leader.seal(), vec!["r1".to_string()]);
        assert_eq!(leader.finish(FlightOutcome::Answered), 1);
        assert_eq!(owner.await.unwrap(), FlightOutcome::Answered);
    }

    #[tokio::test]
    async fn a_dropped_leader_abandons_its_followers() {
        let c = Coalescer::default();
        let Role::Leader(leader) = c.join("k", "r1".into()) else {
            panic!()
        };
        let Role::Follower(f) = c.join("k", "r2".into()) else {
            panic!()
        };
        drop(leader);
        assert_eq!(f.await.unwrap(), FlightOutcome::Abandoned);
        assert!(c.is_empty());
    }

    #[tokio::test]
    async fn a_panicking_leader_abandons_its_followers() {
        let c = Arc::new(Coalescer::default());
        let Role::Leader(leader) = c.join("k", "r1".into()) else {
            panic!()
        };
        let Role::Follower(f) = c.join("k", "r2".into()) else {
            panic!()
        };
        let task = tokio::spawn(async move {
            let _leader = leader;
            panic!("processor bug");
        });
        assert!(task.await.is_err());
        assert_eq!(f.await.unwrap(), FlightOutcome::Abandoned);
    }
}
