//! Batched strongly consistent reads.
//!
//! Why: the messages of one received batch are handled at once, and each
//! starts by reading its item. Read one by one, that is a `GetItem` per
//! message; gathered for a couple of milliseconds, it is one
//! `BatchGetItem` (up to 100 keys, `ConsistentRead`) for all of them.
//! A read alone still goes out as `GetItem`, so a lone message pays
//! nothing more than the linger. Each item is read consistently on its own
//! (DynamoDB gives no snapshot across items, nor needs the state machine
//! one), so a batched read decides exactly as a single read would.
//!
//! - The same key asked twice (two sets of one item, in two flights) is
//!   read once and handed to each caller (DynamoDB refuses duplicates).
//! - Keys DynamoDB leaves unprocessed (throttling) are asked again with
//!   backoff; those still left after [`TRIES`] calls fail as
//!   [`TableError::Unprocessed`], the others get their items.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use super::TableError;
use crate::aws::OnHeap;
use crate::item::{Item, Key};

/// DynamoDB's limit of keys per `BatchGetItem`.
pub const MAX_KEYS: usize = 100;
/// How long a read waits for company: the reads of one received batch
/// start within this of each other.
pub const LINGER: Duration = Duration::from_millis(2);
/// Calls made for one batch while keys come back unprocessed.
pub const TRIES: u32 = 6;
/// The wait before the first retry of unprocessed keys; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(25);

/// Why a batched read failed, shared by the callers it carried.
#[derive(Clone, Debug)]
pub enum Failure {
    Call(&'static str, Arc<aws_sdk_dynamodb::Error>),
    Unprocessed(usize),
}

impl Failure {
    /// The caller's error: the SDK's error itself when this caller is the
    /// only one holding it, else shared.
    fn into_error(self, table: &str) -> TableError {
        match self {
            Failure::Call(op, source) => match Arc::try_unwrap(source) {
                Ok(source) => TableError::Call {
                    op,
                    table: table.to_owned(),
                    source,
                },
                Err(source) => TableError::Shared {
                    op,
                    table: table.to_owned(),
                    source,
                },
            },
            Failure::Unprocessed(left) => TableError::Unprocessed {
                op: "BatchGetItem",
                table: table.to_owned(),
                left,
            },
        }
    }
}

/// Reads the items of `keys` (absent items are empty), one result per key
/// in order: the batcher's flush.
pub async fn read(client: Client, table: String, keys: Vec<Key>) -> Vec<Result<Item, TableError>> {
    let (distinct, index) = distinct(&keys);
    let found = if let [key] = distinct.as_slice() {
        get_item(&client, &table, key).await.map(|item| vec![item])
    } else {
        let maps: Vec<Item> = distinct.iter().map(Key::to_item).collect();
        batch_get(&maps, |ask| batch_get_item(&client, &table, ask)).await
    };
    let mut out = Vec::with_capacity(index.len());
    match found {
        Ok(items) => out.extend(hand_out(items, &index).into_iter().map(Ok)),
        Err(failure) => {
            for f in vec![failure; index.len()] {
                out.push(Err(f.into_error(&table)));
            }
        }
    }
    out
}

/// For each position in `index`, the item it names: the last reader of an
/// item gets it by move, the readers of the same key before it a clone.
fn hand_out(items: Vec<Item>, index: &[usize]) -> Vec<Item> {
    let mut readers = vec![0usize; items.len()];
    for &j in index {
        readers[j] += 1;
    }
    let mut items: Vec<Option<Item>> = items.into_iter().map(Some).collect();
    index
        .iter()
        .map(|&j| {
            readers[j] -= 1;
            let item = if readers[j] == 0 {
                items[j].take()
            } else {
                items[j].clone()
            };
            item.unwrap_or_default()
        })
        .collect()
}

/// The distinct keys of `keys`, and for each of `keys` the position of its
/// distinct key.
pub fn distinct(keys: &[Key]) -> (Vec<Key>, Vec<usize>) {
    let mut out: Vec<Key> = Vec::new();
    let index = keys
        .iter()
        .map(|k| match out.iter().position(|d| d == k) {
            Some(j) => j,
            None => {
                out.push(k.clone());
                out.len() - 1
            }
        })
        .collect();
    (out, index)
}

/// Asks for `keys` (as key attribute maps) with `ask`, which makes one
/// `BatchGetItem` and returns the items found and the keys left
/// unprocessed; asks again for those, with backoff. One item per key, in
/// order (empty when absent).
pub async fn batch_get<F, Fut>(keys: &[Item], ask: F) -> Result<Vec<Item>, Failure>
where
    F: Fn(Vec<Item>) -> Fut,
    Fut: Future<Output = Result<(Vec<Item>, Vec<Item>), Failure>>,
{
    let mut items = vec![Item::new(); keys.len()];
    let mut pending: Vec<usize> = (0..keys.len()).collect();
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=TRIES {
        let (found, unprocessed) = ask(pending.iter().map(|&j| keys[j].clone()).collect()).await?;
        for item in found {
            if let Some(&j) = pending.iter().find(|&&j| is_key_of(&keys[j], &item)) {
                items[j] = item;
            }
        }
        pending.retain(|&j| unprocessed.iter().any(|u| is_key_of(&keys[j], u)));
        if pending.is_empty() {
            return Ok(items);
        }
        if attempt < TRIES {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
    Err(Failure::Unprocessed(pending.len()))
}

/// Whether `item` has the key attributes `key` (numbers compared as
/// numbers: DynamoDB hands back its own form of them).
fn is_key_of(key: &Item, item: &Item) -> bool {
    key.iter().all(|(name, want)| match (want, item.get(name)) {
        (AttributeValue::N(a), Some(AttributeValue::N(b))) => {
            a == b || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
        }
        (want, Some(got)) => want == got,
        (_, None) => false,
    })
}

async fn get_item(client: &Client, table: &str, key: &Key) -> Result<Item, Failure> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key.to_item()))
        .consistent_read(true)
        .send()
        .on_heap()
        .await
        .map_err(|e| Failure::Call("GetItem", Arc::new(e.into())))?;
    Ok(out.item.unwrap_or_default())
}

async fn batch_get_item(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
) -> Result<(Vec<Item>, Vec<Item>), Failure> {
    let ask = KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .consistent_read(true)
        .build()
        .expect("keys are set");
    let out = client
        .batch_get_item()
        .request_items(table, ask)
        .send()
        .on_heap()
        .await
        .map_err(|e| Failure::Call("BatchGetItem", Arc::new(e.into())))?;
    let found = out
        .responses
        .and_then(|mut r| r.remove(table))
        .unwrap_or_default();
    let unprocessed = out
        .unprocessed_keys
        .and_then(|mut u| u.remove(table))
        .map(|k| k.keys)
        .unwrap_or_default();
    Ok((found, unprocessed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::KeyValue;
    use std::sync::Mutex;

    fn key(pk: &str) -> Key {
        Key(vec![("pk".into(), KeyValue::S(pk.into()))])
    }

    fn item(pk: &str, v: &str) -> Item {
        let mut i = key(pk).to_item();
        i.insert("v".into(), AttributeValue::S(v.into()));
        i
    }

    #[test]
    fn a_key_asked_twice_is_read_once_for_both() {
        let (d, index) = distinct(&[key("a"), key("b"), key("a")]);
        assert_eq!(d, [key("a"), key("b")]);
        assert_eq!(index, [0, 1, 0]);
    }

    #[test]
    fn every_reader_of_a_key_gets_its_item() {
        let items = vec![item("a", "1"), item("b", "2")];
        assert_eq!(
            hand_out(items.clone(), &[1, 0, 1, 1]),
            vec![
                items[1].clone(),
                items[0].clone(),
                items[1].clone(),
                items[1].clone()
            ]
        );
    }

    #[test]
    fn numbers_match_in_dynamodb_s_form() {
        let k = Key(vec![("n".into(), KeyValue::N("1.50".into()))]).to_item();
        let mut i = Item::new();
        i.insert("n".into(), AttributeValue::N("1.5".into()));
        assert!(is_key_of(&k, &i));
        i.insert("n".into(), AttributeValue::N("2".into()));
        assert!(!is_key_of(&k, &i));
    }

    /// Unprocessed keys are asked again (and only they); each item reaches
    /// its key's place, an absent item is empty.
    #[tokio::test]
    async fn unprocessed_keys_are_asked_again_until_read() {
        let keys: Vec<Item> = ["a", "b", "c", "gone"]
            .iter()
            .map(|k| key(k).to_item())
            .collect();
        let asked = Mutex::new(Vec::new());
        let items = batch_get(&keys, |ask: Vec<Item>| {
            asked.lock().unwrap().push(ask.len());
            let first = asked.lock().unwrap().len() == 1;
            async move {
                let mut found = Vec::new();
                let mut left = Vec::new();
                for k in ask {
                    let pk = match k.get("pk") {
                        Some(AttributeValue::S(s)) => s.clone(),
                        _ => unreachable!(),
                    };
                    if first && pk != "a" {
                        left.push(k);
                    } else if pk != "gone" {
                        found.push(item(&pk, &format!("v-{pk}")));
                    }
                }
                Ok((found, left))
            }
        })
        .await
        .unwrap();
        assert_eq!(*asked.lock().unwrap(), [4, 3]);
        assert_eq!(items[0], item("a", "v-a"));
        assert_eq!(items[1], item("b", "v-b"));
        assert_eq!(items[2], item("c", "v-c"));
        assert!(items[3].is_empty(), "an absent item is empty");
    }

    #[tokio::test]
    async fn keys_left_unprocessed_after_every_try_fail_as_unprocessed() {
        let keys: Vec<Item> = ["a", "b"].iter().map(|k| key(k).to_item()).collect();
        let calls = Mutex::new(0);
        let r = batch_get(&keys, |ask: Vec<Item>| {
            *calls.lock().unwrap() += 1;
            async move {
                let (a, rest): (Vec<Item>, Vec<Item>) = ask
                    .into_iter()
                    .partition(|k| k.get("pk") == Some(&AttributeValue::S("a".into())));
                Ok((a, rest))
            }
        })
        .await;
        assert!(matches!(r, Err(Failure::Unprocessed(1))), "{r:?}");
        assert_eq!(*calls.lock().unwrap(), TRIES);
    }
}
