//! Offloaded values in the model (issue 14): the handler stores a value
//! before its commit ([`Effect::Store`]); the model's bucket keeps every
//! object written, and a commit may point to one (`valueRef`) instead of
//! holding the value. Objects are written under the run's own key (epoch
//! and request id), as the executor does; a store always succeeds here.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};
use triggered_cache::handler::Input;
use triggered_cache::state::Status;

use super::world::World;

/// The objects written, by key.
pub(crate) type Bucket = BTreeMap<String, Json>;

impl World {
    /// Carries out a store: values of even epochs are offloaded (so that
    /// both kinds of commit happen), odd ones stay in the item.
    pub(crate) fn store_value(&mut self, rid: &str, epoch: i64, value: Json) -> Input {
        if epoch % 2 != 0 {
            return Input::Stored(None);
        }
        let key = format!("{epoch}/{rid}");
        self.objects.insert(key.clone(), value);
        Input::Stored(Some(json!({"bucket": "b", "key": key})))
    }

    /// Invariant 2 with offload: a READY item holds either its value or a
    /// pointer, never both, and a pointer names an object written by a run
    /// of the item's own epoch whose value is of that epoch.
    pub(crate) fn check_offload(&self) {
        let s = &self.store;
        if s.status() != Status::Ready {
            return;
        }
        assert!(
            s.value.is_some() != s.value_ref.is_some(),
            "READY with both or neither of value and valueRef: {s:?}"
        );
        if let Some(r) = &s.value_ref {
            let key = r["key"].as_str().unwrap_or_default();
            let object = self.objects.get(key);
            assert!(object.is_some(), "READY points to no object: {s:?}");
            assert!(
                key.starts_with(&format!("{}/", s.epoch())),
                "READY points to an object of another epoch: {s:?}"
            );
            assert_eq!(
                object.and_then(|v| v["epoch"].as_i64()),
                Some(s.epoch()),
                "READY points to a value of another epoch: {s:?}"
            );
        }
    }
}
