//! The emulator keeps DynamoDB's promise that the daemon's exactly-once
//! rests on: a conditional write to one item is atomic, so of many claims
//! decided on the same state exactly one wins. Plain moto checks a
//! condition and applies the update in separate steps on several threads
//! (9 of 20 herds of 12 concurrent claims had more than one winner);
//! `scripts/local-aws.sh` runs it behind `scripts/emulator/moto_server.py`,
//! which serialises item writes. Without this, the herd tests flake.

mod common;

use common::Env;
use triggered_cache::aws::table::{Table, Updated};
use triggered_cache::clock::now_millis;
use triggered_cache::item::Attrs;
use triggered_cache::state::{self, Clock, Decision};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_of_one_item_have_exactly_one_winner() {
    let env = Env::new("atomic").await;
    let table = Table::new(
        aws_sdk_dynamodb::Client::new(&env.sdk),
        env.name.clone(),
        Attrs {
            prefix: "triggeredCache".into(),
        },
    );
    let clock = Clock {
        now: now_millis(),
        lease: 60_000,
        skew: 0,
        ttl: None,
    };
    for herd in 0..20 {
        let key = Env::key(&format!("cold#{herd}"));
        // Every claimant decided on the same (absent) state.
        let claims = (0..12).map(|i| {
            let rid = format!("r{i}");
            let Decision::Process { write, .. } =
                state::decide_request(&Default::default(), &rid, &rid, &clock)
            else {
                panic!("a cold item is claimed");
            };
            let (table, key) = (&table, &key);
            async move {
                matches!(
                    table.update(key, &[("summary", &write)]).await.unwrap(),
                    Updated::Applied(_)
                )
            }
        });
        let won = futures::future::join_all(claims)
            .await
            .into_iter()
            .filter(|&applied| applied)
            .count();
        assert_eq!(won, 1, "herd {herd}: {won} claims won the same item");
    }
}
