//! The real binary as a child process: its command line with a test's
//! resources configured, its JSON logs collected, its endpoints and
//! signals.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::Env;
use super::emulator::endpoint;

/// The real binary as a child process, with its stderr (JSON logs)
/// collected, and the address of its operations endpoints.
pub struct Daemon {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
}

/// A command for the binary with this env's resources configured.
pub fn bin(env: &Env) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_triggered-cache"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIGGERED_CACHE") {
            c.env_remove(k);
        }
    }
    c.env(
        "TRIGGERED_CACHE_CONFIG",
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"),
    )
    .env("AWS_ACCESS_KEY_ID", "test")
    .env("AWS_SECRET_ACCESS_KEY", "test")
    .env("TRIGGERED_CACHE__AWS__REGION", "us-east-1")
    .env("TRIGGERED_CACHE__AWS__ENDPOINT_URL", endpoint())
    .env("TRIGGERED_CACHE__SQS__QUEUE_URL", &env.queue_url)
    .env("TRIGGERED_CACHE__SQS__DLQ_URL", &env.dlq_url)
    .env("TRIGGERED_CACHE__SQS__WAIT_TIME", "1s")
    .env("TRIGGERED_CACHE__DYNAMODB__TABLE", &env.name)
    .env("TRIGGERED_CACHE__SNS__TOPIC_ARN", &env.topic_arn)
    .env("TRIGGERED_CACHE__HTTP__LISTEN", "127.0.0.1:0")
    .env("TRIGGERED_CACHE__LOG__FORMAT", "json")
    .env("SUMMARIZE_DELAY", "0.2");
    c
}

impl Daemon {
    /// Starts `run` and waits until it logs the address of its endpoints.
    pub fn spawn(mut cmd: std::process::Command) -> Daemon {
        use std::io::BufRead;
        let mut child = cmd
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<Json>(&line)
                    && let Some(addr) = v["addr"].as_str()
                {
                    let _ = addr_tx.send(addr.parse::<std::net::SocketAddr>().unwrap());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "the daemon did not start; logs: {:#?}",
                    logs.lock().unwrap()
                )
            });
        Daemon { child, addr, logs }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                Instant::now() < until,
                "the daemon did not exit; logs: {:#?}",
                self.logs.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `run` without operations endpoints (`http.listen = ""`):
    /// returns once the process runs, with its logs collected; its `addr`
    /// is unspecified (do not `get`).
    pub fn spawn_without_endpoints(mut cmd: std::process::Command) -> Daemon {
        use std::io::BufRead;
        let mut child = cmd
            .env("TRIGGERED_CACHE__HTTP__LISTEN", "")
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(line);
            }
        });
        Daemon {
            child,
            addr: ([0, 0, 0, 0], 0).into(),
            logs,
        }
    }

    /// The JSON log lines whose message is `message`.
    pub fn log_lines(&self, message: &str) -> Vec<Json> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .filter(|v| v["message"] == message)
            .collect()
    }
}
