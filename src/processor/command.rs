//! The `command` processor: runs a program, no shell in between.
//!
//! The job goes to the program's stdin as JSON, the answer comes from its
//! stdout. Exit 0 is success, 75 (`EX_TEMPFAIL`) retryable, anything else
//! permanent; stderr is captured into the error. The worker's timeout drops
//! the future, and `kill_on_drop` kills the program.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{Job, Output, ProcessError, Processor, parse_answer};

/// Exit code that marks a retryable failure (`EX_TEMPFAIL`).
pub const EXIT_RETRYABLE: i32 = 75;
/// The most stdout read (an answer larger than this cannot fit an item).
const MAX_STDOUT: u64 = 4 * 1024 * 1024;
/// The most stderr kept for the error message.
const MAX_STDERR: u64 = 4 * 1024;

#[derive(Debug)]
pub struct CommandProcessor {
    program: PathBuf,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

impl CommandProcessor {
    /// Fails when `program` cannot be found, so that a typo is caught at
    /// start and not on the first request.
    pub fn new(
        program: PathBuf,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    ) -> anyhow::Result<Self> {
        if !program_exists(&program) {
            anyhow::bail!(
                "processor program {} was not found (give a path that exists or a program on PATH)",
                program.display()
            );
        }
        Ok(CommandProcessor { program, args, env })
    }
}

fn program_exists(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

#[async_trait]
impl Processor for CommandProcessor {
    async fn process(&self, job: &Job) -> Result<Output, ProcessError> {
        let input = serde_json::to_vec(job).map_err(|e| ProcessError::Permanent(e.to_string()))?;
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .envs(&self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                ProcessError::Retryable(format!("cannot start {}: {e}", self.program.display()))
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let write = async move {
            // A program that does not read its input closes the pipe: not
            // an error of ours.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        };
        let read_out = async move {
            let mut buf = Vec::new();
            stdout
                .take(MAX_STDOUT + 1)
                .read_to_end(&mut buf)
                .await
                .map(|_| buf)
        };
        let read_err = async move {
            let mut buf = Vec::new();
            let mut limited = stderr.take(MAX_STDERR);
            let _ = limited.read_to_end(&mut buf).await;
            // Drain the rest so the program never blocks on a full pipe.
            let _ = tokio::io::copy(&mut limited.into_inner(), &mut tokio::io::sink()).await;
            buf
        };
        let ((), out, err) = tokio::join!(write, read_out, read_err);
        let status = child.wait().await.map_err(|e| {
            ProcessError::Retryable(format!("waiting for {}: {e}", self.program.display()))
        })?;
        let stderr = String::from_utf8_lossy(&err).trim().to_owned();
        let detail = if stderr.is_empty() {
            String::new()
        } else {
            format!(": {stderr}")
        };
        match status.code() {
            Some(0) => {
                let out =
                    out.map_err(|e| ProcessError::Retryable(format!("reading stdout: {e}")))?;
                if out.len() as u64 > MAX_STDOUT {
                    return Err(ProcessError::Permanent(format!(
                        "the answer on stdout is over {MAX_STDOUT} bytes, more than an item can hold"
                    )));
                }
                parse_answer(&out)
            }
            Some(EXIT_RETRYABLE) => Err(ProcessError::Retryable(format!(
                "{} exited with 75 (retryable){detail}",
                self.program.display()
            ))),
            Some(code) => Err(ProcessError::Permanent(format!(
                "{} exited with {code}{detail}",
                self.program.display()
            ))),
            None => Err(ProcessError::Retryable(format!(
                "{} was killed by a signal{detail}",
                self.program.display()
            ))),
        }
    }
}
