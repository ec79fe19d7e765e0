//! The offload of a large value (issue 14): between the run and its
//! commit, the value is stored ([`Effect::Store`]) and the commit carries
//! either the value or the pointer to where it was stored.
//!
//! Why a step of its own, before the commit: the object must exist before
//! any item can point to it, and the commit stays the one fenced write
//! that makes the value visible. If the commit is rejected (a trigger moved
//! the epoch, another request took over), nothing ever points to the
//! object: it is garbage, deleted by the executor or, at the latest, by the
//! cleanup after the set's next commit or the bucket's lifecycle rule.

use serde_json::Value as Json;

use super::machine::{Handler, OwnerWrite, Phase};
use super::{Effect, Note};
use crate::processor::Output;
use crate::state::{self, Clock};

impl Handler {
    /// The processor answered with `output`: store it first where the set
    /// offloads large values, else commit it at once.
    pub(super) fn store_or_commit(
        &mut self,
        epoch: i64,
        attempt: i64,
        output: Output,
        clock: &Clock,
    ) -> Effect {
        if !self.policy.offload {
            return self.commit(epoch, attempt, output, None, clock);
        }
        let value = output.value.clone();
        self.phase = Phase::Storing {
            epoch,
            attempt,
            output,
        };
        Effect::Store {
            rid: self.rid.clone(),
            epoch,
            value,
        }
    }

    /// The value was stored: in S3 (`value_ref`, the pointer the commit
    /// writes) or not at all (small enough for the item).
    pub(super) fn stored(
        &mut self,
        epoch: i64,
        attempt: i64,
        output: Output,
        value_ref: Option<Json>,
        clock: &Clock,
    ) -> Effect {
        if value_ref.is_some() {
            self.notes.push(Note::Offloaded { epoch });
        }
        self.commit(epoch, attempt, output, value_ref, clock)
    }

    fn commit(
        &mut self,
        epoch: i64,
        attempt: i64,
        output: Output,
        value_ref: Option<Json>,
        clock: &Clock,
    ) -> Effect {
        let write = match &value_ref {
            Some(r) => state::commit_ref(&self.rid, epoch, r.clone(), clock.now),
            None => state::commit(&self.rid, epoch, output.value.clone(), clock.now),
        };
        self.phase = Phase::Owning {
            epoch,
            write: OwnerWrite::Commit {
                attempt,
                value: output.value.clone(),
                value_ref,
            },
        };
        Effect::Commit { write, output }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{Answer, Disposition, Input, Policy, Subject};
    use super::*;
    use crate::config::EventKind;
    use crate::state::{Cache, Status};

    fn clock() -> Clock {
        Clock {
            now: 1_000_000,
            lease: 3_000,
            skew: 200,
            ttl: None,
        }
    }

    fn handler(rid: &str) -> Handler {
        let policy = Policy {
            set: "s".into(),
            max_attempts: 3,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 8_000,
            max_rehandles: 3,
            offload: true,
            answer_each_request: None,
            policies: Default::default(),
        };
        let subject = Subject::Request {
            rid: rid.into(),
            message_id: rid.into(),
            input: None,
        };
        Handler::new(policy, subject)
    }

    /// Carries out a write on `store` as DynamoDB would.
    fn write(store: &mut Cache, effect: &Effect) -> Input {
        let (Effect::Write(w) | Effect::Commit { write: w, .. }) = effect else {
            panic!("not a write: {effect:?}");
        };
        if store.apply(w) {
            Input::Applied(store.clone())
        } else {
            Input::Rejected(store.clone())
        }
    }

    #[test]
    fn an_offloaded_value_is_stored_before_the_commit_of_its_pointer() {
        let mut store = Cache::default();
        let mut h = handler("r1");
        let claim = h.next(Input::Read(store.clone()), &clock()).effect;
        let run = h.next(write(&mut store, &claim), &clock()).effect;
        assert!(matches!(run, Effect::Run { epoch: 0, .. }), "{run:?}");
        let output = Output {
            value: json!({"pdf": "..."}),
            depends_on: vec![],
        };
        let stored = h.next(Input::Ran(Ok(output)), &clock()).effect;
        assert_eq!(
            stored,
            Effect::Store {
                rid: "r1".into(),
                epoch: 0,
                value: json!({"pdf": "..."})
            }
        );
        assert_eq!(store.status(), Status::Processing, "nothing committed yet");
        let pointer = json!({"bucket": "b", "key": "k", "size": 14, "sha256": "ab"});
        let step = h.next(Input::Stored(Some(pointer.clone())), &clock());
        assert_eq!(step.notes, vec![Note::Offloaded { epoch: 0 }]);
        let publish = h.next(write(&mut store, &step.effect), &clock()).effect;
        assert_eq!(store.status(), Status::Ready);
        assert_eq!(
            (store.value.clone(), store.value_ref.clone()),
            (None, Some(pointer.clone()))
        );
        let Effect::Publish(Answer {
            kind: EventKind::Ready,
            value: Some(_),
            value_ref: Some(r),
            ..
        }) = &publish
        else {
            panic!("{publish:?}");
        };
        assert_eq!(r, &pointer);
        // A hit carries the pointer: the executor reads the value only if
        // the event has room for it.
        let mut other = handler("r2");
        let adopt = other.next(Input::Read(store.clone()), &clock()).effect;
        assert!(matches!(adopt, Effect::Adopt { .. }), "{adopt:?}");
        let hit = other.next(Input::Adopted(false), &clock()).effect;
        let Effect::Publish(answer) = hit else {
            panic!("{hit:?}")
        };
        assert_eq!(
            (answer.kind, answer.value, answer.value_ref),
            (EventKind::Hit, None, Some(pointer))
        );
        let _ = Disposition::Delete;
    }

    #[test]
    fn a_small_value_stays_in_the_item_and_a_later_commit_drops_the_pointer() {
        let mut store = Cache {
            value_ref: Some(json!({"bucket": "b", "key": "old"})),
            ..Cache::default()
        };
        let mut h = handler("r1");
        let claim = h.next(Input::Read(store.clone()), &clock()).effect;
        let _run = h.next(write(&mut store, &claim), &clock());
        let output = Output {
            value: json!(7),
            depends_on: vec![],
        };
        let _store = h.next(Input::Ran(Ok(output)), &clock());
        let commit = h.next(Input::Stored(None), &clock()).effect;
        h.next(write(&mut store, &commit), &clock());
        assert_eq!(store.status(), Status::Ready);
        assert_eq!(
            (store.value.clone(), store.value_ref.clone()),
            (Some(json!(7)), None)
        );
    }
}
