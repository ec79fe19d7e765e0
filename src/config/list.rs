//! List keys that the environment can set too.
//!
//! An environment variable holds one string, so a list key
//! (`sns.events`, `sns.record_attributes`, a `command` processor's `args`)
//! also reads a comma-separated string: `TRIGGERED_CACHE__SNS__EVENTS=ready,failed`.
//! Items are trimmed, empty items dropped, so `""` is the empty list. An
//! item that contains a comma can only be written in the TOML file, as an
//! array. (The `config` crate could split lists itself only together with
//! `try_parsing`, which turns number-like strings such as account ids into
//! numbers.)

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, SeqAccess, Visitor};

/// A list from an array, or from a comma-separated string.
pub fn deserialize<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_any(List(PhantomData))
}

/// Like [`deserialize`], for a list that may be left unset.
pub fn optional<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserialize(d).map(Some)
}

/// The items of a comma-separated string: trimmed, empty ones dropped.
pub fn items(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|item| !item.is_empty())
}

struct List<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for List<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array, or a comma-separated string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<T>, E> {
        items(s)
            .map(|item| T::deserialize(item.into_deserializer()))
            .collect()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            out.push(item);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use crate::events::EventKind;

    #[derive(Debug, Deserialize)]
    struct Lists {
        #[serde(deserialize_with = "super::deserialize")]
        events: Vec<EventKind>,
        #[serde(default, deserialize_with = "super::optional")]
        names: Option<Vec<String>>,
    }

    fn lists(v: serde_json::Value) -> Result<Lists, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn a_comma_separated_string_is_a_list_of_trimmed_items() {
        let l = lists(json!({"events": " ready, failed ,", "names": "pk,status"})).unwrap();
        assert_eq!(l.events, vec![EventKind::Ready, EventKind::Failed]);
        assert_eq!(l.names, Some(vec!["pk".into(), "status".into()]));
    }

    #[test]
    fn an_empty_string_is_an_empty_list_and_an_array_is_read_as_it_is() {
        let l = lists(json!({"events": "", "names": [" a ", "b,c"]})).unwrap();
        assert!(l.events.is_empty());
        assert_eq!(l.names, Some(vec![" a ".into(), "b,c".into()]));
        assert_eq!(lists(json!({"events": []})).unwrap().names, None);
    }

    #[test]
    fn a_bad_item_or_a_number_is_refused() {
        let e = lists(json!({"events": "ready,bogus"})).unwrap_err();
        assert!(e.contains("bogus") && e.contains("ready"), "{e}");
        let e = lists(json!({"events": 3})).unwrap_err();
        assert!(e.contains("comma-separated string"), "{e}");
    }
}
