//! What a run of a task will do, decided before anything is touched: from the session,
//! what the round's files say, and the options. Pure — the facts are gathered at the
//! edge ([`Facts`] holds them), so every way a run can begin or resume is a unit test
//! here: fresh, scanned, partly staged, import-only, changed plan, expired key and
//! abandoned.

use super::Stages;

/// What the session says, when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFacts {
    pub round: u32,
    /// The round started and did not complete.
    pub unfinished: bool,
    /// The plan's hash for the task when the round started.
    pub plan_hash: String,
}

/// The state of a round's key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    Missing,
    Valid,
    Expired,
    /// Unreadable, exposed, someone else's or malformed: never used, never replaced.
    Unusable,
}

/// What is on disk for one round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundFiles {
    pub key: KeyState,
    /// The hand-over note of a staging run.
    pub note: bool,
    /// The scan's checkpoint.
    pub scanned: bool,
    /// The journal: a run of the round made something durable.
    pub journal: bool,
}

impl RoundFiles {
    /// A round nothing was done for yet.
    pub const NONE: RoundFiles = RoundFiles {
        key: KeyState::Missing,
        note: false,
        scanned: false,
        journal: false,
    };
}

/// Everything the decision rests on.
#[derive(Clone, Debug)]
pub struct Facts {
    pub session: Option<SessionFacts>,
    /// The task's plan hash now.
    pub hash: String,
    pub stages: Stages,
    pub restart: bool,
    /// The files of the session's round.
    pub current: RoundFiles,
    /// The files of the round after it (a new round normally has none; a staging run
    /// may have left a note for it only if the session says so).
    pub next: RoundFiles,
}

/// How the round's item list is had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanStep {
    /// Walk the source and write the item list and its checkpoint.
    Walk,
    /// A run of this round scanned already: its checkpoint and item list are checked
    /// and used (package numbers depend on them).
    Checkpoint,
}

/// Which key seals and opens the round's packages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStep {
    /// The round's own key, still valid.
    Reuse,
    /// A new key and container (nothing was staged, or a new round).
    Create,
    /// The key expired: what it staged is deleted, and a new key stages it again.
    Replace,
}

/// Why a run cannot start; nothing was touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The plan changed in the middle of a round, and `--restart` was not given.
    PlanChanged { round: u32, was: String },
    /// An import-only run with no staged round to import.
    NothingStaged { round: u32 },
    /// The key cannot be used (an import-only run cannot make a new one; an unusable
    /// key is never replaced silently).
    Key { round: u32, state: KeyState },
}

/// What the run does, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundPlan {
    /// A completed round whose key or note a killed run left behind: they go first.
    pub tidy: Option<u32>,
    /// An import-only run that finds such leftovers is the killed run's rerun: the
    /// completed round's result is its result, when its summary can be read.
    pub report_completed: bool,
    /// An unfinished round set aside by `--restart`.
    pub abandon: Option<u32>,
    /// The round the run works on, and whether it is a new one.
    pub round: u32,
    pub new_round: bool,
    pub scan: ScanStep,
    /// The key, as things stand before the scan. The run asks [`key_step`] again when it
    /// needs the key, since a key may expire during a long scan.
    pub key: Result<KeyStep, Refusal>,
}

/// Decides what a run does.
pub fn decide(facts: &Facts) -> Result<RoundPlan, Refusal> {
    let (round, unfinished, plan_hash) = match &facts.session {
        Some(s) => (s.round, s.unfinished, s.plan_hash.as_str()),
        None => (0, false, ""),
    };
    let mut tidy = None;
    let mut report_completed = false;
    if !unfinished && round > 0 {
        let left_over = facts.current.key != KeyState::Missing || facts.current.note;
        if left_over {
            tidy = Some(round);
            report_completed = !facts.stages.send;
        }
    }
    let mut abandon = None;
    if unfinished && (facts.restart || plan_hash != facts.hash) {
        if !facts.restart {
            return Err(Refusal::PlanChanged {
                round,
                was: plan_hash.to_string(),
            });
        }
        abandon = Some(round);
    }
    let resumed = unfinished && abandon.is_none();
    if !resumed && !facts.stages.send && !report_completed {
        return Err(Refusal::NothingStaged { round: round + 1 });
    }
    let (round, files) = if resumed {
        (round, facts.current)
    } else {
        (round + 1, facts.next)
    };
    if !facts.stages.send && !files.note && !report_completed {
        return Err(Refusal::NothingStaged { round });
    }
    let scan = if resumed && files.scanned {
        ScanStep::Checkpoint
    } else {
        ScanStep::Walk
    };
    let key = if resumed {
        key_step(files.key, facts.stages.send, round)
    } else {
        Ok(KeyStep::Create)
    };
    Ok(RoundPlan {
        tidy,
        report_completed,
        abandon,
        round,
        new_round: !resumed,
        scan,
        key,
    })
}

/// Which key a round uses, given its key file and whether the run may stage.
pub fn key_step(key: KeyState, send: bool, round: u32) -> Result<KeyStep, Refusal> {
    match (key, send) {
        (KeyState::Valid, _) => Ok(KeyStep::Reuse),
        (KeyState::Missing, true) => Ok(KeyStep::Create),
        (KeyState::Expired, true) => Ok(KeyStep::Replace),
        (state, _) => Err(Refusal::Key { round, state }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Stages = Stages {
        send: true,
        import: true,
    };
    const SEND: Stages = Stages {
        send: true,
        import: false,
    };
    const IMPORT: Stages = Stages {
        send: false,
        import: true,
    };

    fn facts(session: Option<(u32, bool)>, stages: Stages) -> Facts {
        Facts {
            session: session.map(|(round, unfinished)| SessionFacts {
                round,
                unfinished,
                plan_hash: "h1".into(),
            }),
            hash: "h1".into(),
            stages,
            restart: false,
            current: RoundFiles::NONE,
            next: RoundFiles::NONE,
        }
    }

    fn files(key: KeyState, note: bool, scanned: bool, journal: bool) -> RoundFiles {
        RoundFiles {
            key,
            note,
            scanned,
            journal,
        }
    }

    #[test]
    fn fresh_task_starts_round_one_with_a_walk_and_a_new_key() {
        let plan = decide(&facts(None, ALL)).unwrap();
        assert_eq!(
            plan,
            RoundPlan {
                tidy: None,
                report_completed: false,
                abandon: None,
                round: 1,
                new_round: true,
                scan: ScanStep::Walk,
                key: Ok(KeyStep::Create),
            }
        );
        // After a completed round, the next one is new too.
        let plan = decide(&facts(Some((4, false)), ALL)).unwrap();
        assert_eq!((plan.round, plan.new_round, plan.tidy), (5, true, None));
    }

    #[test]
    fn scanned_round_resumes_from_its_checkpoint() {
        let mut f = facts(Some((2, true)), ALL);
        f.current = files(KeyState::Missing, false, true, false);
        let plan = decide(&f).unwrap();
        assert_eq!((plan.round, plan.new_round), (2, false));
        assert_eq!(plan.scan, ScanStep::Checkpoint);
        // Killed before the scan finished: the walk is done again.
        f.current.scanned = false;
        assert_eq!(decide(&f).unwrap().scan, ScanStep::Walk);
    }

    #[test]
    fn partly_staged_round_keeps_its_key() {
        let mut f = facts(Some((3, true)), ALL);
        f.current = files(KeyState::Valid, false, true, true);
        let plan = decide(&f).unwrap();
        assert_eq!(plan.round, 3);
        assert_eq!(plan.scan, ScanStep::Checkpoint);
        assert_eq!(plan.key, Ok(KeyStep::Reuse));
        assert_eq!(plan.abandon, None);
    }

    #[test]
    fn import_only_needs_a_staged_round_and_its_key() {
        // Nothing was staged.
        assert_eq!(
            decide(&facts(None, IMPORT)),
            Err(Refusal::NothingStaged { round: 1 })
        );
        assert_eq!(
            decide(&facts(Some((2, false)), IMPORT)),
            Err(Refusal::NothingStaged { round: 3 })
        );
        // A round a staging run left for it.
        let mut f = facts(Some((1, true)), IMPORT);
        f.current = files(KeyState::Valid, true, true, true);
        let plan = decide(&f).unwrap();
        assert_eq!((plan.round, plan.key), (1, Ok(KeyStep::Reuse)));
        // Without the note, the round was not staged to the end.
        f.current.note = false;
        assert_eq!(decide(&f), Err(Refusal::NothingStaged { round: 1 }));
        // An import-only run cannot make a key.
        f.current = files(KeyState::Missing, true, true, true);
        assert_eq!(
            decide(&f).unwrap().key,
            Err(Refusal::Key {
                round: 1,
                state: KeyState::Missing
            })
        );
    }

    #[test]
    fn import_only_rerun_of_a_completed_round_reports_it() {
        let mut f = facts(Some((2, false)), IMPORT);
        f.current = files(KeyState::Valid, true, true, true);
        let plan = decide(&f).unwrap();
        assert_eq!(plan.tidy, Some(2));
        assert!(plan.report_completed);
        // A full run tidies and goes on with a new round.
        f.stages = ALL;
        let plan = decide(&f).unwrap();
        assert_eq!((plan.tidy, plan.report_completed), (Some(2), false));
        assert_eq!((plan.round, plan.new_round), (3, true));
    }

    #[test]
    fn changed_plan_mid_round_is_refused_unless_restarted() {
        let mut f = facts(Some((2, true)), ALL);
        f.hash = "h2".into();
        f.current = files(KeyState::Valid, false, true, true);
        assert_eq!(
            decide(&f),
            Err(Refusal::PlanChanged {
                round: 2,
                was: "h1".into()
            })
        );
        // A completed round may be followed by a changed plan.
        let mut done = facts(Some((2, false)), ALL);
        done.hash = "h2".into();
        assert_eq!(decide(&done).unwrap().round, 3);
    }

    #[test]
    fn expired_key_is_replaced_by_a_staging_run_only() {
        let mut f = facts(Some((2, true)), SEND);
        f.current = files(KeyState::Expired, false, true, true);
        assert_eq!(decide(&f).unwrap().key, Ok(KeyStep::Replace));
        f.stages = IMPORT;
        f.current.note = true;
        assert_eq!(
            decide(&f).unwrap().key,
            Err(Refusal::Key {
                round: 2,
                state: KeyState::Expired
            })
        );
        // A damaged key is never replaced silently.
        f.stages = ALL;
        f.current.key = KeyState::Unusable;
        assert!(decide(&f).unwrap().key.is_err());
    }

    #[test]
    fn restart_abandons_the_round_and_starts_the_next() {
        let mut f = facts(Some((2, true)), ALL);
        f.restart = true;
        f.hash = "h2".into();
        f.current = files(KeyState::Valid, false, true, true);
        let plan = decide(&f).unwrap();
        assert_eq!(plan.abandon, Some(2));
        assert_eq!((plan.round, plan.new_round), (3, true));
        assert_eq!(plan.scan, ScanStep::Walk);
        assert_eq!(plan.key, Ok(KeyStep::Create));
        // An import-only restart has nothing to import afterwards.
        f.stages = IMPORT;
        assert_eq!(decide(&f), Err(Refusal::NothingStaged { round: 3 }));
    }
}
