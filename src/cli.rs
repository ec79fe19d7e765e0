//! The command line: `run` (the daemon) and the operators' subcommands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value as Json, json};

use crate::admin;
use crate::config::{Config, ConfigError, ProcessorConfig, Validated};

mod when;
use when::When;

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
  triggered-cache send request order#123 --set summary
  triggered-cache send trigger order#123 --set '*'
  triggered-cache send trigger order#123 --set summary --at 2026-12-24T00:00:00Z
  triggered-cache inspect order#123
  triggered-cache dlq list
  triggered-cache dlq redrive --skip-malformed
  triggered-cache healthcheck http://127.0.0.1:9090/healthz
  triggered-cache iam-actions

Exit codes: 0 done, 1 runtime failure, 2 bad configuration or usage.";

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the worker daemon until SIGTERM or SIGINT (the default).
    Run,
    /// Send a message to the request queue (for producers and smoke tests).
    Send {
        #[command(subcommand)]
        message: SendCmd,
    },
    /// Show the cache state of an item: status, epoch, owner, lease left,
    /// parked request, ready age, attempts and last error per set.
    Inspect {
        #[command(flatten)]
        key: KeyArgs,
        /// Only this set (default: every configured set).
        #[arg(long)]
        set: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Print each set's value as JSON instead (read from S3 when it
        /// was offloaded, checked against its valueRef).
        #[arg(long)]
        value: bool,
    },
    /// Reset an item's cache now (like a trigger message, written directly):
    /// epoch + 1, STALE, owner and parked request cleared, `reset` event.
    Reset {
        #[command(flatten)]
        key: KeyArgs,
        /// The set to reset, or "*" for every set.
        #[arg(long)]
        set: String,
    },
    /// Work with the dead-letter queue.
    Dlq {
        #[command(subcommand)]
        action: DlqCmd,
    },
    /// Work with the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigCmd,
    },
    /// Probe a running daemon's liveness endpoint: exit 0 when it answers
    /// 2xx within 2 seconds, 1 otherwise. Reads no configuration (for the
    /// container's HEALTHCHECK, in an image without curl).
    Healthcheck {
        /// The endpoint to probe.
        #[arg(default_value = crate::healthcheck::DEFAULT_URL)]
        url: String,
    },
    /// Print, as JSON, every IAM action the AWS calls need: action,
    /// resource (queue, dlq, table, deps, topic), caller (daemon or
    /// operator), the SDK calls and what needs them. Reads no configuration
    /// (deploy/ checks its IAM policies against it).
    IamActions,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate the configuration and print it as the daemon sees it, with
    /// secrets redacted.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum DlqCmd {
    /// List dead-lettered messages with the reason each was dead-lettered
    /// (bodies and reasons that are JSON printed as JSON). They stay in the
    /// DLQ.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Move the messages that are in the dead-letter queue now back to the
    /// request queue (after fixing what made them fail), then stop and
    /// print how many moved, by deadLetterKind. Messages dead-lettered again
    /// while it runs are left in the DLQ.
    Redrive {
        /// At most this many (default: all that were there at the start).
        #[arg(long)]
        limit: Option<usize>,
        /// Leave messages whose deadLetterKind is `malformed` in the DLQ: sent
        /// back, they would only be dead-lettered again.
        #[arg(long)]
        skip_malformed: bool,
    },
}

/// Which item: its partition key value (and sort key value).
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The partition key value of the item, e.g. order#123.
    #[arg(value_name = "KEY")]
    pub key: String,
    /// The sort key value, for tables that have one.
    #[arg(long)]
    pub sort_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct Target {
    #[command(flatten)]
    pub key: KeyArgs,
    /// The cache set (for `trigger`, "*" resets every set).
    #[arg(long)]
    pub set: String,
}

#[derive(Debug, Subcommand)]
pub enum SendCmd {
    /// Ask for the cached object (KEY, set).
    Request {
        #[command(flatten)]
        target: Target,
        /// A request id; by default each message's SQS MessageId.
        #[arg(long)]
        request_id: Option<String>,
        /// The request's input, as JSON.
        #[arg(long, value_parser = parse_json)]
        input: Option<Json>,
        /// Send this many requests (each its own request id unless
        /// --request-id is given); a progress bar shows bulk sends.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Reset the cache of (KEY, set).
    Trigger {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        when: When,
    },
    /// Start a trigger flow: reset, and hold reprocessing until it ends.
    TriggerStart {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        trigger_id: String,
        #[command(flatten)]
        when: When,
    },
    /// End a trigger flow; a parked request is processed at once.
    TriggerEnd {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        trigger_id: String,
        #[command(flatten)]
        when: When,
    },
}

fn parse_json(s: &str) -> Result<Json, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

/// The entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Cmd::Healthcheck { url }) = &cli.command {
        return crate::healthcheck::run(url);
    }
    if let Some(Cmd::IamActions) = &cli.command {
        let list = serde_json::to_string_pretty(crate::aws::IAM_ACTIONS)
            .expect("the action list serialises");
        println!("{list}");
        return ExitCode::SUCCESS;
    }
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => return config_failure(&e),
    };
    let runtime = match runtime(cfg.worker.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let telemetry = crate::telemetry::init(&cfg)?;
        let result = dispatch(cfg, cli.command.unwrap_or(Cmd::Run)).await;
        // Flushing may block: keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
        result
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

/// The async runtime of `worker.threads`: one thread by default. On one
/// thread a message's steps never hand off between threads, which saves a
/// wake-up (a context switch) per step: a third of the CPU per message in
/// the benchmark (docs/PERFORMANCE.md). A program that embeds the worker
/// builds its own runtime.
fn runtime(threads: u32) -> std::io::Result<tokio::runtime::Runtime> {
    match threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Runtime::new(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n as usize)
            .enable_all()
            .build(),
    }
}

async fn dispatch(cfg: Validated, cmd: Cmd) -> anyhow::Result<()> {
    // What `run` needs beyond `Config::load`'s validation is checked here
    // for `config check` too, so that the check says what `run` would.
    let runs = matches!(
        cmd,
        Cmd::Run
            | Cmd::Config {
                action: ConfigCmd::Check
            }
    );
    if runs
        && let Some((set, _)) = cfg
            .sets
            .iter()
            .find(|(_, s)| matches!(s.processor, ProcessorConfig::Embedded))
    {
        return Err(issue(
            &format!("sets.{set}.processor.kind"),
            "is \"embedded\": a processor registered in code by a program that links the library (Worker::with_processor); the triggered-cache binary runs \"command\" or \"http\" processors - set one of those",
        )
        .into());
    }
    let sdk = crate::daemon::aws_config(&cfg).await;
    if sdk.region().is_none() {
        return Err(issue(
            "aws.region",
            "is not set and no AWS region was found in AWS_REGION or the AWS profile",
        )
        .into());
    }
    if let Cmd::Config {
        action: ConfigCmd::Check,
    } = cmd
    {
        println!("{}", redacted_toml(&cfg)?);
        eprintln!("configuration is valid");
        return Ok(());
    }
    match cmd {
        Cmd::Run => {
            // The configuration, processors included, was validated by
            // `Config::load`, as for `config check`: what fails here is not
            // the configuration's fault.
            let worker = crate::daemon::worker(cfg, &sdk)?;
            crate::daemon::run(Arc::new(worker)).await
        }
        Cmd::Send { message } => {
            let bodies = bodies(&cfg, message)?;
            let ids = admin::send(&cfg, &sdk, &bodies).await?;
            for (id, body) in ids.iter().zip(&bodies) {
                println!("sent {} {id}", body["type"].as_str().unwrap_or("message"));
            }
            eprintln!(
                "{} of {} messages sent to {}",
                ids.len(),
                bodies.len(),
                cfg.sqs.queue_url
            );
            Ok(())
        }
        Cmd::Inspect {
            key,
            set,
            json,
            value,
        } => {
            let key = admin::key(&cfg, &key.key, key.sort_key.as_deref())?;
            admin::inspect(&cfg, &sdk, &key, set.as_deref(), json, value).await
        }
        Cmd::Reset { key, set } => {
            let key = admin::key(&cfg, &key.key, key.sort_key.as_deref())?;
            admin::reset(&cfg, &sdk, &key, &set).await
        }
        Cmd::Dlq {
            action: DlqCmd::List { limit },
        } => admin::dlq_list(&cfg, &sdk, limit).await,
        Cmd::Dlq {
            action:
                DlqCmd::Redrive {
                    limit,
                    skip_malformed,
                },
        } => {
            let opts = admin::Redrive {
                limit: limit.unwrap_or(usize::MAX),
                skip_malformed,
            };
            println!("{}", admin::dlq_redrive(&cfg, &sdk, opts).await?);
            Ok(())
        }
        Cmd::Config { .. } | Cmd::Healthcheck { .. } | Cmd::IamActions => {
            unreachable!("handled above")
        }
    }
}

fn issue(key: &str, problem: &str) -> ConfigError {
    ConfigError::one(key, problem)
}

fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("error: invalid configuration:\n{e}");
    ExitCode::from(2)
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

/// The message bodies a `send` command stands for.
fn bodies(cfg: &Config, cmd: SendCmd) -> anyhow::Result<Vec<Json>> {
    let body = |kind: &str, target: &Target, extra: Map<String, Json>| -> anyhow::Result<Json> {
        let key = admin::key(cfg, &target.key.key, target.key.sort_key.as_deref())?;
        let mut body = json!({"v": 1, "type": kind, "key": key.to_json(), "set": target.set});
        if let Json::Object(map) = &mut body {
            map.extend(extra);
        }
        Ok(body)
    };
    // A flow's start or end: its trigger id, and when it is due.
    let flow = |kind: &str, target: &Target, id: String, when: When| {
        let mut extra = Map::from_iter([("triggerId".to_owned(), json!(id))]);
        extra.extend(when.fields());
        body(kind, target, extra)
    };
    Ok(match cmd {
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
                extra.insert("input".into(), input);
            }
            vec![body("request", &target, extra)?; count as usize]
        }
        SendCmd::Trigger { target, when } => vec![body("trigger", &target, when.fields())?],
        SendCmd::TriggerStart {
            target,
            trigger_id,
            when,
        } => vec![flow("trigger_start", &target, trigger_id, when)?],
        SendCmd::TriggerEnd {
            target,
            trigger_id,
            when,
        } => vec![flow("trigger_end", &target, trigger_id, when)?],
    })
}
