//! The command line: `run` (the daemon) and the operators' subcommands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde_json::{Map, Value as Json, json};

use crate::config::{Config, ConfigError, ProcessorConfig};

/// triggered-cache keeps event-invalidated caches in DynamoDB items and
/// recomputes each exactly once, fed by SQS and announced on SNS.
#[derive(Debug, Parser)]
#[command(name = "triggered-cache", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// The configuration file (TOML). Every key can also be set with an
    /// environment variable TRIGGERED_CACHE__SECTION__KEY, e.g.
    /// TRIGGERED_CACHE__SQS__QUEUE_URL.
    #[arg(
        long,
        short,
        global = true,
        env = "TRIGGERED_CACHE_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

const AFTER_HELP: &str = "\
Examples:
  triggered-cache --config config/default.toml run
  triggered-cache config check
  triggered-cache send request --key pk=order#123 --set summary
  triggered-cache send trigger --key pk=order#123 --set '*'

Exit codes: 0 done, 1 runtime failure, 2 bad configuration or usage.";

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the worker daemon until SIGTERM or SIGINT (the default).
    Run,
    /// Send a message to the queue (for producers and smoke tests).
    Send {
        #[command(subcommand)]
        message: SendCmd,
    },
    /// Work with the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate the configuration and print it as the daemon sees it, with
    /// secrets redacted.
    Check,
}

#[derive(Debug, clap::Args)]
pub struct Target {
    /// A key attribute as NAME=VALUE (repeat for a sort key), e.g.
    /// --key pk=order#123.
    #[arg(long = "key", required = true, value_name = "NAME=VALUE", value_parser = parse_key)]
    pub key: Vec<(String, String)>,
    /// The cache set (for `trigger`, "*" resets every set).
    #[arg(long)]
    pub set: String,
}

#[derive(Debug, Subcommand)]
pub enum SendCmd {
    /// Ask for the cached object (key, set).
    Request {
        #[command(flatten)]
        target: Target,
        /// A request id; by default each message's SQS MessageId.
        #[arg(long)]
        request_id: Option<String>,
        /// The request's input, as JSON.
        #[arg(long, value_parser = parse_json)]
        input: Option<Json>,
        /// Send this many requests (each its own request id).
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Reset the cache of (key, set).
    Trigger {
        #[command(flatten)]
        target: Target,
    },
    /// Start a trigger flow: reset, and hold reprocessing until it ends.
    TriggerStart {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        trigger_id: String,
    },
    /// End a trigger flow; a parked request is processed at once.
    TriggerEnd {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        trigger_id: String,
    },
}

fn parse_key(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

fn parse_json(s: &str) -> Result<Json, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

/// The entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => return config_failure(&e),
    };
    crate::daemon::init_logging(&cfg);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Cmd::Run) {
            Cmd::Run => run(cfg).await,
            Cmd::Config {
                action: ConfigCmd::Check,
            } => {
                println!("{}", redacted_toml(&cfg)?);
                eprintln!("configuration is valid");
                Ok(())
            }
            Cmd::Send { message } => send(&cfg, message).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(ce) = e.downcast_ref::<ConfigError>() {
                return config_failure(ce);
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("error: invalid configuration:\n{e}");
    ExitCode::from(2)
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    let sdk = crate::daemon::aws_config(&cfg).await;
    if sdk.region().is_none() {
        return Err(ConfigError {
            issues: vec![crate::config::ConfigIssue {
                key: "aws.region".into(),
                problem: "is not set and no AWS region was found (AWS_REGION or a profile)".into(),
            }],
        }
        .into());
    }
    let worker = crate::daemon::worker(Arc::new(cfg), &sdk).map_err(|e| ConfigError {
        issues: vec![crate::config::ConfigIssue {
            key: "sets".into(),
            problem: format!("cannot be set up: {e:#}"),
        }],
    })?;
    crate::daemon::run(Arc::new(worker)).await
}

/// The configuration as TOML, with processor headers and environment
/// values (which may hold credentials) redacted.
pub fn redacted_toml(cfg: &Config) -> anyhow::Result<String> {
    let mut cfg = cfg.clone();
    for set in cfg.sets.values_mut() {
        match &mut set.processor {
            ProcessorConfig::Http { headers, .. } => {
                headers.values_mut().for_each(|v| *v = "<redacted>".into())
            }
            ProcessorConfig::Command { env, .. } => {
                env.values_mut().for_each(|v| *v = "<redacted>".into())
            }
            ProcessorConfig::Embedded => {}
        }
    }
    Ok(toml::to_string_pretty(&cfg)?)
}

/// Builds the JSON body of a message.
pub fn message_body(kind: &str, target: &Target, extra: Map<String, Json>) -> Json {
    let key: Map<String, Json> = target
        .key
        .iter()
        .map(|(k, v)| (k.clone(), Json::String(v.clone())))
        .collect();
    let mut body = json!({"v": 1, "type": kind, "key": key, "set": target.set});
    if let Json::Object(map) = &mut body {
        map.extend(extra);
    }
    body
}

async fn send(cfg: &Config, cmd: SendCmd) -> anyhow::Result<()> {
    let sdk = crate::daemon::aws_config(cfg).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (bodies, what) = match &cmd {
        SendCmd::Request {
            target,
            request_id,
            input,
            count,
        } => {
            let mut extra = Map::new();
            if let Some(rid) = request_id {
                extra.insert("requestId".into(), json!(rid));
            }
            if let Some(input) = input {
                extra.insert("input".into(), input.clone());
            }
            let body = message_body("request", target, extra);
            (vec![body; *count as usize], "request")
        }
        SendCmd::Trigger { target } => {
            (vec![message_body("trigger", target, Map::new())], "trigger")
        }
        SendCmd::TriggerStart { target, trigger_id } => {
            let extra = Map::from_iter([("triggerId".to_owned(), json!(trigger_id))]);
            (
                vec![message_body("trigger_start", target, extra)],
                "trigger_start",
            )
        }
        SendCmd::TriggerEnd { target, trigger_id } => {
            let extra = Map::from_iter([("triggerId".to_owned(), json!(trigger_id))]);
            (
                vec![message_body("trigger_end", target, extra)],
                "trigger_end",
            )
        }
    };
    let total = bodies.len();
    let mut sent = 0;
    for chunk in bodies.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, b)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(b.to_string())
                    .build()
                    .expect("id and body are set")
            })
            .collect::<Vec<_>>();
        let out = sqs
            .send_message_batch()
            .queue_url(&cfg.sqs.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "sending to {}: {}",
                    cfg.sqs.queue_url,
                    crate::table::aws_error_message(&e)
                )
            })?;
        if let Some(f) = out.failed.first() {
            anyhow::bail!(
                "sending failed: {}: {}",
                f.code,
                f.message.clone().unwrap_or_default()
            );
        }
        sent += out.successful.len();
        for ok in &out.successful {
            println!("sent {what} {}", ok.message_id);
        }
    }
    eprintln!("{sent} of {total} messages sent");
    Ok(())
}
