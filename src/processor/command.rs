//! The `command` processor: runs a program, no shell in between.
//!
//! The job goes to the program's stdin as JSON, the answer comes from its
//! stdout. Exit 0 is success, 75 (`EX_TEMPFAIL`) retryable, anything else
//! permanent; stderr is captured into the error (JSON compacted, still
//! JSON). A program that cannot be started (gone, not executable) is a
//! permanent failure; [`find_program`] refuses it at start already. The
//! worker's timeout drops the future, and `kill_on_drop` kills the program.

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
    /// Fails when `program` cannot be run (see [`find_program`]), so that a
    /// typo or a missing `chmod +x` is caught at start and not on the first
    /// request.
    pub fn new(
        program: PathBuf,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    ) -> anyhow::Result<Self> {
        if let Err(problem) = find_program(&program, &env) {
            anyhow::bail!("processor program {problem}");
        }
        Ok(CommandProcessor { program, args, env })
    }
}

/// The search path when none is set, as `execvp` has it.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// The file that starting `program` will execute, found the way the spawn
/// finds it: a name without `/` in the directories of PATH (the processor's
/// own `env` PATH when it sets one, else the daemon's), anything else as a
/// path (a relative one from the working directory). The error says why it
/// cannot run and what to do, worded to follow its key: `is "x", which ...`.
pub fn find_program(program: &Path, env: &BTreeMap<String, String>) -> Result<PathBuf, String> {
    let shown = program.display().to_string();
    if shown.is_empty() {
        return Err("is missing; give the path of the program to run, or its name on PATH".into());
    }
    if shown.contains('/') {
        return match runnable(program) {
            Ok(()) => Ok(program.to_owned()),
            Err(Unrunnable::Missing) if program.is_relative() => {
                let cwd = std::env::current_dir()
                    .map_or_else(|_| "?".into(), |d| d.display().to_string());
                Err(format!(
                    "is {shown:?}, which was not found in the working directory {cwd}; give an absolute path, or start the daemon in the directory it is relative to"
                ))
            }
            Err(Unrunnable::Missing) => Err(format!(
                "is {shown:?}, which was not found; give the path of an existing program, or its name on PATH"
            )),
            Err(Unrunnable::Other(why)) => Err(format!("is {shown:?}, which {why}")),
        };
    }
    let search = env
        .get("PATH")
        .map(std::ffi::OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_else(|| DEFAULT_PATH.into());
    let mut first_problem = None;
    for dir in std::env::split_paths(&search) {
        // An empty entry is the working directory, as for execvp.
        let candidate = if dir.as_os_str().is_empty() {
            Path::new(".").join(program)
        } else {
            dir.join(program)
        };
        match runnable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(Unrunnable::Missing) => {}
            Err(Unrunnable::Other(why)) => {
                first_problem.get_or_insert((candidate, why));
            }
        }
    }
    Err(match first_problem {
        Some((found, why)) => format!(
            "is {shown:?}, found on PATH as {}, which {why}",
            found.display()
        ),
        None => format!(
            "is {shown:?}, which was not found on PATH ({}); give its path, or add its directory to PATH",
            search.to_string_lossy()
        ),
    })
}

enum Unrunnable {
    Missing,
    /// Why not, as a phrase after "which".
    Other(String),
}

/// Whether this process can execute `path`.
fn runnable(path: &Path) -> Result<(), Unrunnable> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unrunnable::Missing),
        Err(e) => return Err(Unrunnable::Other(format!("cannot be looked at: {e}"))),
    };
    if meta.is_dir() {
        return Err(Unrunnable::Other(
            "is a directory, not a program; name the program inside it".into(),
        ));
    }
    if !meta.is_file() {
        return Err(Unrunnable::Other(
            "is not a regular file; name a program".into(),
        ));
    }
    rustix::fs::access(path, rustix::fs::Access::EXEC_OK).map_err(|e| {
        Unrunnable::Other(format!(
            "this daemon's user cannot execute ({}); make it executable (chmod +x) or name another program",
            std::io::Error::from(e)
        ))
    })
}

/// A failed start. A program that is missing, not executable or not a
/// program fails the same way on every retry: permanent (fix it, then
/// redrive the DLQ). Running out of processes, memory or file descriptors
/// may pass: retryable.
fn start_error(program: &Path, e: std::io::Error) -> ProcessError {
    use std::io::ErrorKind as K;
    let msg = format!("cannot start {}: {e}", program.display());
    let permanent = matches!(
        e.kind(),
        K::NotFound
            | K::PermissionDenied
            | K::NotADirectory
            | K::IsADirectory
            | K::InvalidInput
            | K::ArgumentListTooLong
    ) || e.raw_os_error() == Some(rustix::io::Errno::NOEXEC.raw_os_error());
    if permanent {
        ProcessError::Permanent(format!(
            "{msg}; make sure the program exists and this daemon's user can execute it, then redrive the DLQ"
        ))
    } else {
        ProcessError::Retryable(msg)
    }
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
            .map_err(|e| start_error(&self.program, e))?;
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
        let stderr = super::excerpt(&err, MAX_STDERR as usize);
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
