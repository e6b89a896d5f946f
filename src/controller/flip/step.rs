//! How far a flip got: its steps in order, recorded in the journal (fact `step`) as each
//! is reached, so that a run that died half way is resolved by the next one.

use serde_json::json;

use super::super::error::CutoverError;
use super::super::phase::Phase;
use super::super::runner::Context;

/// How far a flip got, as the journal records it (fact `step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Step {
    Paused,
    Fenced,
    Detached,
    Attached,
    Opened,
    Switching,
}

impl Step {
    const ALL: [Step; 6] = [Step::Paused, Step::Fenced, Step::Detached, Step::Attached, Step::Opened, Step::Switching];

    pub(super) fn name(self) -> &'static str {
        match self {
            Step::Paused => "paused",
            Step::Fenced => "fenced",
            Step::Detached => "detached",
            Step::Attached => "attached",
            Step::Opened => "opened",
            Step::Switching => "switching",
        }
    }
}

pub(super) fn record(ctx: &mut Context, phase: Phase, step: Step) -> Result<(), CutoverError> {
    ctx.journal.set_fact(phase, "step", json!(step.name()))?;
    Ok(())
}

pub(super) fn recorded_step(ctx: &Context, phase: Phase) -> Option<Step> {
    let name = ctx.journal.fact(phase, "step")?.as_str()?;
    Step::ALL.into_iter().find(|s| s.name() == name)
}
