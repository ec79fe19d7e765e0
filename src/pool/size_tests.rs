//! What one message in flight costs in memory: its task holds the future
//! of `handle_one`. That future once reached 34.5 KB (every SDK call inline,
//! and `Worker::handle` holding `handle_message` twice), 35 MB for 1024
//! messages in flight; SDK calls and rare branches are boxed where they are
//! made now. This keeps it from growing back unnoticed.

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};

use super::*;

#[tokio::test]
async fn a_message_in_flight_stays_small() {
    let cfg = crate::config::fixture::validated("", &[]).unwrap();
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .build();
    let worker = Arc::new(crate::daemon::worker(cfg, &sdk).unwrap());
    let msg = Received {
        message_id: "m".into(),
        receipt: "r".into(),
        body: "{}".into(),
        receive_count: 1,
        sent_at: None,
        attributes: Default::default(),
    };
    let permit = Arc::new(tokio::sync::Semaphore::new(1))
        .acquire_owned()
        .await
        .unwrap();
    let pool = Arc::new(worker.pool());
    let way = pool.answering.enter();
    let task = handle_one(pool, Arc::default(), msg, Arc::default(), permit, way);
    let size = std::mem::size_of_val(&task);
    println!("one message in flight: {size} bytes");
    // 2.9 KB in release and test builds alike.
    assert!(size <= 8 * 1024, "a message in flight holds {size} bytes");
}
