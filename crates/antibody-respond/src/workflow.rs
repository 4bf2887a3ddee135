//! People working an incident — acknowledge, assign, note, resolve, reopen — and the
//! engine's own resolutions (`healed` when probation passed, `mitigated` or `quiet` when it
//! went quiet). Pure: the response stage keeps one [`IncidentWork`] per incident beside
//! detection's record, never inside it, so a later detection update cannot overwrite what
//! people set; reads overlay it ([`IncidentWork::overlay`]).
//!
//! ## Status
//! `open → acknowledged → resolved`, and `resolved → open` by a reopen. Until anyone acts,
//! the status is detection's (`open`, or `resolved`/`quiet` once quiet for a whole window);
//! once set here it wins. A reopened incident is resolved again only by a person: detection
//! no longer correlates into it, so nothing else would speak for it.

use crate::RespondError;
use antibody_core::{
    Incident, IncidentStatus, Note, Resolution, TimelineEntry, TimestampMs, Workflow,
};
use serde::{Deserialize, Serialize};

/// Notes one incident keeps at most (more are refused: open a new incident's thread).
pub const MAX_NOTES: usize = 200;
/// Characters of one note at most.
pub const MAX_NOTE_CHARS: usize = 4_000;
/// Characters of an assignee or a root cause at most.
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_ROOT_CAUSE_CHARS: usize = 1_000;
/// Timeline entries kept (the oldest go first; the audit chain keeps them all).
const MAX_EVENTS: usize = 500;
/// Characters of a note quoted in the timeline.
const NOTE_PREVIEW_CHARS: usize = 120;

/// What a person does to an incident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IncidentOp {
    Ack,
    Assign {
        to: String,
    },
    Note {
        text: String,
    },
    Resolve {
        resolution: Resolution,
        root_cause: Option<String>,
    },
    Reopen,
}

impl IncidentOp {
    /// The verb, for the audit record.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ack => "ack",
            Self::Assign { .. } => "assign",
            Self::Note { .. } => "note",
            Self::Resolve { .. } => "resolve",
            Self::Reopen => "reopen",
        }
    }
}

/// The work on one incident, as the response stage stores it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IncidentWork {
    /// `None` until someone acts: detection's status holds.
    pub status: Option<IncidentStatus>,
    pub workflow: Workflow,
    /// What was done, merged into the incident's timeline.
    pub events: Vec<TimelineEntry>,
}

impl IncidentWork {
    /// The status shown, given detection's.
    pub fn status(&self, detected: IncidentStatus) -> IncidentStatus {
        self.status.unwrap_or(detected)
    }

    /// Applies a person's operation; `detected` is detection's status of the incident.
    /// Returns the timeline text of what changed.
    pub fn apply(
        &mut self,
        id: &str,
        op: &IncidentOp,
        detected: IncidentStatus,
        actor: &str,
        now: TimestampMs,
    ) -> Result<String, RespondError> {
        let status = self.status(detected);
        let refuse = |expected| {
            Err(RespondError::IncidentStatus {
                id: id.to_owned(),
                status: status.to_string(),
                expected,
            })
        };
        let w = &mut self.workflow;
        let text = match op {
            IncidentOp::Ack => {
                if status != IncidentStatus::Open {
                    return refuse("only an open incident can be acknowledged");
                }
                self.status = Some(IncidentStatus::Acknowledged);
                w.acknowledged_by = Some(actor.to_owned());
                w.acknowledged_at = Some(now);
                format!("acknowledged by {actor}")
            }
            IncidentOp::Assign { to } => {
                let to = bounded("`to`", to, MAX_NAME_CHARS)?;
                w.assignee = Some(to.to_owned());
                format!("assigned to {to} by {actor}")
            }
            IncidentOp::Note { text } => {
                let text = bounded("`text`", text, MAX_NOTE_CHARS)?;
                if w.notes.len() >= MAX_NOTES {
                    return Err(RespondError::InvalidInput(format!(
                        "incident `{id}` has {MAX_NOTES} notes, the most it keeps"
                    )));
                }
                w.notes.push(Note {
                    ts: now,
                    actor: actor.to_owned(),
                    text: text.to_owned(),
                });
                format!("note by {actor}: {}", preview(text))
            }
            IncidentOp::Resolve {
                resolution,
                root_cause,
            } => {
                if status == IncidentStatus::Resolved {
                    return refuse("reopen it first to resolve it again");
                }
                if !Resolution::BY_PEOPLE.contains(resolution) {
                    return Err(RespondError::InvalidInput(format!(
                        "`{resolution}` is set by the engine; a person resolves with one of {}",
                        people_resolutions()
                    )));
                }
                let root_cause = root_cause
                    .as_deref()
                    .map(|c| bounded("`root_cause`", c, MAX_ROOT_CAUSE_CHARS))
                    .transpose()?;
                self.status = Some(IncidentStatus::Resolved);
                w.resolution = Some(*resolution);
                w.root_cause = root_cause.map(str::to_owned);
                w.resolved_by = Some(actor.to_owned());
                w.resolved_at = Some(now);
                match root_cause {
                    Some(c) => format!("resolved ({resolution}) by {actor}: root cause {c}"),
                    None => format!("resolved ({resolution}) by {actor}"),
                }
            }
            IncidentOp::Reopen => {
                if status != IncidentStatus::Resolved {
                    return refuse("only a resolved incident can be reopened");
                }
                self.status = Some(IncidentStatus::Open);
                w.resolution = None;
                w.root_cause = None;
                w.resolved_by = None;
                w.resolved_at = None;
                w.acknowledged_by = None;
                w.acknowledged_at = None;
                format!("reopened by {actor}")
            }
        };
        self.event(now, text.clone());
        Ok(text)
    }

    /// The engine resolves the incident (`healed`, `mitigated`, `quiet`); true when that
    /// changes what the incident shows. A person's resolution or reopen stands, and a
    /// quiet close of an incident nobody touched is what detection's record says already.
    pub fn engine_resolve(
        &mut self,
        resolution: Resolution,
        reason: &str,
        now: TimestampMs,
    ) -> bool {
        match self.status {
            Some(IncidentStatus::Resolved | IncidentStatus::Open) => return false,
            None if resolution == Resolution::Quiet => return false,
            _ => {}
        }
        self.status = Some(IncidentStatus::Resolved);
        let w = &mut self.workflow;
        w.resolution = Some(resolution);
        w.resolved_by = Some(crate::decision::ENGINE.to_owned());
        w.resolved_at = Some(now);
        self.event(
            now,
            format!("resolved ({resolution}) by the engine: {reason}"),
        );
        true
    }

    /// Shows the work on detection's record of the incident: status, workflow fields and
    /// timeline. Detection's own resolution (a quiet close) shows until the work has one.
    pub fn overlay(&self, inc: &mut Incident) {
        inc.status = self.status(inc.status);
        let detected = std::mem::take(&mut inc.workflow);
        let mut w = self.workflow.clone();
        if w.resolution.is_none() && inc.status == IncidentStatus::Resolved {
            w.resolution = detected.resolution;
            w.resolved_by = detected.resolved_by;
            w.resolved_at = detected.resolved_at;
        }
        inc.workflow = w;
        if !self.events.is_empty() {
            inc.timeline.extend(self.events.iter().cloned());
            // Stable: entries of one instant keep their order.
            inc.timeline.sort_by_key(|e| e.ts);
        }
    }

    fn event(&mut self, ts: TimestampMs, event: String) {
        if self.events.len() >= MAX_EVENTS {
            self.events.remove(0);
        }
        self.events.push(TimelineEntry {
            ts,
            event,
            finding: None,
        });
    }
}

/// `healed, mitigated, …` for error messages.
pub fn people_resolutions() -> String {
    Resolution::BY_PEOPLE
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A trimmed, non-empty string of at most `max` characters.
fn bounded<'a>(what: &str, s: &'a str, max: usize) -> Result<&'a str, RespondError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(RespondError::InvalidInput(format!(
            "{what} must not be empty"
        )));
    }
    if s.chars().count() > max {
        return Err(RespondError::InvalidInput(format!(
            "{what} is longer than {max} characters"
        )));
    }
    Ok(s)
}

fn preview(text: &str) -> String {
    match text.char_indices().nth(NOTE_PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use IncidentStatus::*;

    const OPEN: IncidentStatus = Open;

    fn resolve(r: Resolution, cause: Option<&str>) -> IncidentOp {
        IncidentOp::Resolve {
            resolution: r,
            root_cause: cause.map(str::to_owned),
        }
    }

    #[test]
    fn ack_assign_note_resolve_reopen_round_trip() {
        let mut w = IncidentWork::default();
        w.apply("i-1", &IncidentOp::Ack, OPEN, "k-1", 10).unwrap();
        assert_eq!(w.status(OPEN), Acknowledged);
        assert_eq!(w.workflow.acknowledged_by.as_deref(), Some("k-1"));
        let to = IncidentOp::Assign {
            to: " alice ".into(),
        };
        w.apply("i-1", &to, OPEN, "k-1", 11).unwrap();
        assert_eq!(w.workflow.assignee.as_deref(), Some("alice"));
        let note = IncidentOp::Note {
            text: "looking".into(),
        };
        w.apply("i-1", &note, OPEN, "k-2", 12).unwrap();
        assert_eq!(w.workflow.notes[0].actor, "k-2");
        let text = w
            .apply(
                "i-1",
                &resolve(Resolution::FalsePositive, Some("load test")),
                OPEN,
                "k-1",
                13,
            )
            .unwrap();
        assert!(
            text.contains("false_positive") && text.contains("load test"),
            "{text}"
        );
        assert_eq!(w.status(OPEN), Resolved);
        assert_eq!(w.workflow.resolved_at, Some(13));
        w.apply("i-1", &IncidentOp::Reopen, OPEN, "k-1", 14)
            .unwrap();
        assert_eq!(w.status(Resolved), Open, "a reopen beats detection's close");
        assert_eq!(w.workflow.resolution, None);
        assert_eq!(w.workflow.assignee.as_deref(), Some("alice"), "kept");
        assert_eq!(w.workflow.notes.len(), 1, "kept");
        assert_eq!(w.events.len(), 5);
    }

    #[test]
    fn wrong_statuses_are_conflicts() {
        let mut w = IncidentWork::default();
        let err = w
            .apply("i-1", &IncidentOp::Reopen, OPEN, "k", 1)
            .unwrap_err();
        assert_eq!(err.code(), "conflict");
        // Detection closed it quietly: it can be reopened, not acknowledged or resolved.
        let err = w
            .apply("i-1", &IncidentOp::Ack, Resolved, "k", 1)
            .unwrap_err();
        assert_eq!(err.code(), "conflict");
        let r = resolve(Resolution::Mitigated, None);
        assert_eq!(
            w.apply("i-1", &r, Resolved, "k", 1).unwrap_err().code(),
            "conflict"
        );
        w.apply("i-1", &IncidentOp::Ack, OPEN, "k", 1).unwrap();
        assert_eq!(
            w.apply("i-1", &IncidentOp::Ack, OPEN, "k", 2)
                .unwrap_err()
                .code(),
            "conflict"
        );
        assert!(w.events.len() == 1, "refusals leave no trace");
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let mut w = IncidentWork::default();
        let empty = IncidentOp::Note { text: "  ".into() };
        let err = w.apply("i-1", &empty, OPEN, "k", 1).unwrap_err();
        assert_eq!(err.code(), "bad_request");
        let long = IncidentOp::Assign {
            to: "x".repeat(MAX_NAME_CHARS + 1),
        };
        assert!(w.apply("i-1", &long, OPEN, "k", 1).is_err());
        let quiet = resolve(Resolution::Quiet, None);
        let err = w.apply("i-1", &quiet, OPEN, "k", 1).unwrap_err();
        assert!(err.to_string().contains("false_positive"), "{err}");
        for i in 0..MAX_NOTES {
            let n = IncidentOp::Note {
                text: format!("n{i}"),
            };
            w.apply("i-1", &n, OPEN, "k", 2).unwrap();
        }
        let one_more = IncidentOp::Note { text: "x".into() };
        assert!(w.apply("i-1", &one_more, OPEN, "k", 3).is_err());
        assert_eq!(w.status, None, "notes alone leave the status to detection");
    }

    #[test]
    fn the_engine_resolves_unless_a_person_decided() {
        let mut w = IncidentWork::default();
        assert!(
            !w.engine_resolve(Resolution::Quiet, "quiet", 1),
            "detection's record says so already"
        );
        assert!(w.engine_resolve(Resolution::Healed, "5 samples within baseline", 2));
        assert_eq!(w.workflow.resolution, Some(Resolution::Healed));
        assert_eq!(w.workflow.resolved_by.as_deref(), Some("engine"));
        assert!(
            !w.engine_resolve(Resolution::Mitigated, "quiet", 3),
            "already resolved"
        );

        let mut acked = IncidentWork::default();
        acked.apply("i-1", &IncidentOp::Ack, OPEN, "k", 1).unwrap();
        assert!(acked.engine_resolve(Resolution::Quiet, "quiet", 2));
        assert_eq!(acked.status(OPEN), Resolved);
        assert_eq!(acked.workflow.acknowledged_by.as_deref(), Some("k"), "kept");

        let mut reopened = IncidentWork::default();
        let fp = resolve(Resolution::FalsePositive, None);
        reopened.apply("i-1", &fp, OPEN, "k", 1).unwrap();
        reopened
            .apply("i-1", &IncidentOp::Reopen, OPEN, "k", 2)
            .unwrap();
        assert!(!reopened.engine_resolve(Resolution::Mitigated, "quiet", 3));
    }

    #[test]
    fn the_overlay_shows_the_work_on_detections_record() {
        let body = r#"{"id":"i-1","entity":"agent:a","status":"resolved",
            "opened":0,"updated":5,"risk":4.5,"severity":"medium","kinds":[],
            "finding_count":1,"max_score":0.5,"diagnosis":[],"findings":[],"actions":[],
            "timeline":[{"ts":0,"event":"incident opened"},{"ts":9,"event":"closed"}],
            "resolution":"quiet","resolved_by":"engine","resolved_at":9}"#;
        let detected: Incident = serde_json::from_str(body).unwrap();
        let mut w = IncidentWork::default();
        let note = IncidentOp::Note { text: "hm".into() };
        w.apply("i-1", &note, Resolved, "k", 3).unwrap();
        let mut inc = detected.clone();
        w.overlay(&mut inc);
        assert_eq!(inc.status, Resolved);
        assert_eq!(
            inc.workflow.resolution,
            Some(Resolution::Quiet),
            "detection's"
        );
        assert_eq!(inc.workflow.notes.len(), 1);
        let events: Vec<&str> = inc.timeline.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(events, vec!["incident opened", "note by k: hm", "closed"]);
        w.apply("i-1", &IncidentOp::Reopen, Resolved, "k", 10)
            .unwrap();
        let mut inc = detected;
        w.overlay(&mut inc);
        assert_eq!(inc.status, Open);
        assert_eq!(inc.workflow.resolution, None);
    }
}
