//! A processor the test controls: it records every run and answers as the
//! test says (a value, a delay, an error), so that tests can count runs and
//! hold one open.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use triggered_cache::processor::{Job, Output, ProcessError, Processor};

type Behaviour = dyn Fn(Job, usize) -> Pin<Box<dyn Future<Output = Result<Output, ProcessError>> + Send>>
    + Send
    + Sync;

/// A test processor: records every run (set, epoch, request id) and does
/// what its behaviour says.
#[derive(Clone)]
pub struct Recorder {
    pub runs: Arc<Mutex<Vec<Job>>>,
    behaviour: Arc<Behaviour>,
}

impl Recorder {
    pub fn new<F, Fut>(f: F) -> Recorder
    where
        F: Fn(Job, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Output, ProcessError>> + Send + 'static,
    {
        Recorder {
            runs: Arc::default(),
            behaviour: Arc::new(move |job, n| Box::pin(f(job, n))),
        }
    }

    /// Answers `{"epoch": <epoch>, "n": <run number>}` after `delay`.
    pub fn ok_after(delay: Duration) -> Recorder {
        Recorder::new(move |job: Job, n| async move {
            tokio::time::sleep(delay).await;
            Ok(Output {
                value: json!({"epoch": job.epoch, "n": n}),
                depends_on: vec![],
            })
        })
    }

    pub fn count(&self) -> usize {
        self.runs.lock().unwrap().len()
    }
}

#[async_trait]
impl Processor for Recorder {
    async fn process(&self, job: &Job) -> Result<Output, ProcessError> {
        let n = {
            let mut runs = self.runs.lock().unwrap();
            runs.push(job.clone());
            runs.len()
        };
        (self.behaviour)(job.clone(), n).await
    }
}
