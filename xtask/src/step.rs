//! One step of `cargo xtask test`: how it ends and how it runs a command.
//!
//! Shared by the orchestrator (`ci`) and the steps it calls (`coverage`,
//! `ops`), which import this module and never each other.

use std::process::{Command, Stdio};

use anyhow::Context;

/// How a step ended.
pub(crate) enum StepError {
    /// A command ran and failed: its output already explains why.
    Failed(String),
    /// xtask itself could not do the step.
    Error(anyhow::Error),
}

impl From<anyhow::Error> for StepError {
    fn from(err: anyhow::Error) -> Self {
        StepError::Error(err)
    }
}

/// `Ok` when the step passed; a failed step stops the run.
pub(crate) type StepResult = Result<(), StepError>;

/// Runs a command with its output going to ours; a non-zero exit fails the step.
pub(crate) fn run_command(mut command: Command) -> StepResult {
    let status = command
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(StepError::Failed(status.to_string()))
    }
}
