//! The action catalogue: what the responder can ask an executor to do, each kind's parameter
//! schema and default TTL, and the [`Action`] record with the exact field names of API.md.

use crate::cidr::{target_ip, Cidr};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

const HOUR_MS: i64 = 3_600_000;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    BlockIp,
    RateLimit,
    Quarantine,
    Reset,
    RevokeTools,
    Isolate,
    BudgetCap,
    Notify,
    Webhook,
    Command,
    Signal,
}

/// What a kind's target must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// An IP address or CIDR block (`block_ip`).
    Address,
    /// The entity being acted on (quarantine, reset, …).
    Entity,
    /// Free text (a channel, a URL's subject, a command's subject).
    Free,
}

/// The type a parameter must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    Text,
    PositiveNumber,
    Bool,
    TextList,
    OneOf(&'static [&'static str]),
    HttpUrl,
    /// A secret by reference only: `env:VAR` or `file:PATH`, never the value itself.
    SecretRef,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub required: bool,
}

const fn p(name: &'static str, ty: ParamType, required: bool) -> ParamSpec {
    ParamSpec { name, ty, required }
}

const SIGNALS: &[&str] = &["TERM", "KILL", "STOP", "CONT", "HUP", "INT"];
const PERIODS: &[&str] = crate::enforce::Period::NAMES;

/// Where an applied action takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EffectPoint {
    /// Served by antibody itself: the enforcement view behind `/v1/entities/{e}/verdict`
    /// and `/v1/blocklist` ([`crate::enforce`]).
    View,
    /// Carried out in the world by a configured executor.
    Executor,
    /// Needs a control point antibody does not have (an agent control API): the action is
    /// recorded for people, never reported as applied.
    Unattached,
}

impl ActionKind {
    pub const ALL: [ActionKind; 11] = [
        Self::BlockIp,
        Self::RateLimit,
        Self::Quarantine,
        Self::Reset,
        Self::RevokeTools,
        Self::Isolate,
        Self::BudgetCap,
        Self::Notify,
        Self::Webhook,
        Self::Command,
        Self::Signal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlockIp => "block_ip",
            Self::RateLimit => "rate_limit",
            Self::Quarantine => "quarantine",
            Self::Reset => "reset",
            Self::RevokeTools => "revoke_tools",
            Self::Isolate => "isolate",
            Self::BudgetCap => "budget_cap",
            Self::Notify => "notify",
            Self::Webhook => "webhook",
            Self::Command => "command",
            Self::Signal => "signal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn target_kind(self) -> TargetKind {
        match self {
            Self::BlockIp => TargetKind::Address,
            Self::Notify | Self::Webhook | Self::Command => TargetKind::Free,
            _ => TargetKind::Entity,
        }
    }

    /// Where an applied action of this kind takes effect.
    pub fn effect_point(self) -> EffectPoint {
        match self {
            Self::BlockIp
            | Self::RateLimit
            | Self::Quarantine
            | Self::Isolate
            | Self::RevokeTools
            | Self::BudgetCap => EffectPoint::View,
            Self::Notify | Self::Webhook | Self::Command | Self::Signal => EffectPoint::Executor,
            Self::Reset => EffectPoint::Unattached,
        }
    }

    /// Containment takes the entity out of service (drain, then quarantine).
    pub fn is_containment(self) -> bool {
        matches!(self, Self::Quarantine | Self::Isolate)
    }

    /// Whether applying the action leaves state behind that its undo removes. One-shot
    /// actions (reset, signal, notify) have nothing to undo; webhook and command are
    /// reversible when they name an undo (`undo_url`, `undo_argv`).
    pub fn is_reversible(self, params: &Params) -> bool {
        match self {
            Self::Reset | Self::Signal | Self::Notify => false,
            Self::Webhook => params.contains_key("undo_url"),
            Self::Command => params.contains_key("undo_argv"),
            _ => true,
        }
    }

    /// TTL when the playbook gives none.
    pub fn default_ttl_ms(self) -> i64 {
        match self {
            Self::BlockIp | Self::RateLimit | Self::Webhook | Self::Command => HOUR_MS,
            Self::Quarantine | Self::Isolate | Self::RevokeTools | Self::BudgetCap => 24 * HOUR_MS,
            Self::Reset | Self::Signal | Self::Notify => 60_000,
        }
    }

    pub fn params(self) -> &'static [ParamSpec] {
        use ParamType::*;
        match self {
            Self::BlockIp => const { &[p("scope", Text, false), p("ports", TextList, false)] },
            Self::RateLimit => {
                const {
                    &[
                        p("rate", PositiveNumber, true),
                        p("per", OneOf(PERIODS), false),
                    ]
                }
            }
            Self::Quarantine | Self::Isolate => const { &[p("reason", Text, false)] },
            Self::Reset => const { &[p("memory", Bool, false), p("session", Bool, false)] },
            Self::RevokeTools => const { &[p("tools", TextList, false)] },
            Self::BudgetCap => {
                const {
                    &[
                        p("usd", PositiveNumber, true),
                        p("period", OneOf(PERIODS), false),
                    ]
                }
            }
            Self::Notify => const { &[p("channel", Text, false), p("message", Text, false)] },
            Self::Webhook => {
                const {
                    &[
                        p("url", HttpUrl, true),
                        p("undo_url", HttpUrl, false),
                        p("secret", SecretRef, false),
                    ]
                }
            }
            Self::Command => {
                const { &[p("argv", TextList, true), p("undo_argv", TextList, false)] }
            }
            Self::Signal => const { &[p("signal", OneOf(SIGNALS), true)] },
        }
    }

    /// Checks `params` against the kind's schema; returns every problem.
    pub fn validate_params(self, params: &Params) -> Result<(), Vec<String>> {
        let specs = self.params();
        let mut problems = Vec::new();
        for name in params.keys() {
            if !specs.iter().any(|s| s.name == name) {
                let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
                problems.push(format!(
                    "unknown parameter `{name}` for {} (known: {})",
                    self.as_str(),
                    known.join(", ")
                ));
            }
        }
        for spec in specs {
            match params.get(spec.name) {
                None if spec.required => {
                    problems.push(format!("{} needs parameter `{}`", self.as_str(), spec.name))
                }
                None => {}
                Some(v) => {
                    if let Err(why) = check_type(spec.ty, v) {
                        problems.push(format!("parameter `{}`: {why}", spec.name));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Checks a resolved target against the kind.
    pub fn validate_target(self, target: &str) -> Result<(), String> {
        match self.target_kind() {
            TargetKind::Address if target_ip(target).is_none() && Cidr::parse(target).is_none() => {
                Err(format!("`{target}` is not an IP address or CIDR block"))
            }
            TargetKind::Entity if target.is_empty() => Err("empty target".into()),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn check_type(ty: ParamType, v: &ParamValue) -> Result<(), String> {
    let ok = match (ty, v) {
        (ParamType::Text, ParamValue::Str(_)) | (ParamType::Bool, ParamValue::Bool(_)) => true,
        (ParamType::PositiveNumber, v) => v.as_f64().is_some_and(|x| x > 0.0 && x.is_finite()),
        (ParamType::TextList, ParamValue::List(items)) => !items.is_empty(),
        (ParamType::OneOf(allowed), ParamValue::Str(s)) => {
            if allowed.contains(&s.as_str()) {
                true
            } else {
                return Err(format!("`{s}` is not one of {}", allowed.join(", ")));
            }
        }
        (ParamType::HttpUrl, ParamValue::Str(s)) => {
            s.starts_with("http://") || s.starts_with("https://")
        }
        (ParamType::SecretRef, ParamValue::Str(s)) => {
            s.starts_with("env:") || s.starts_with("file:")
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {}", describe(ty)))
    }
}

fn describe(ty: ParamType) -> &'static str {
    match ty {
        ParamType::Text => "a string",
        ParamType::PositiveNumber => "a positive number",
        ParamType::Bool => "true or false",
        ParamType::TextList => "a non-empty list of strings",
        ParamType::OneOf(_) => "one of the listed words",
        ParamType::HttpUrl => "an http:// or https:// URL",
        ParamType::SecretRef => "a secret reference (`env:VAR` or `file:PATH`)",
    }
}

/// A parameter value. JSON and YAML see plain values (`"10/m"`, `5`, `true`, `["a"]`);
/// binary snapshots see a tagged enum, because postcard cannot guess a type from the bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<String>),
}

pub type Params = BTreeMap<String, ParamValue>;

impl ParamValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Float(f) => Some(*f),
            _ => None,
        }
    }
}

#[derive(Serialize)]
enum TaggedRef<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(&'a [String]),
}

#[derive(Deserialize)]
enum Tagged {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<String>),
}

/// The plain JSON form: a string, a number, a boolean or a list of strings.
impl schemars::JsonSchema for ParamValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ParamValue".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"oneOf": [
            {"type": "string"}, {"type": "number"}, {"type": "boolean"},
            {"type": "array", "items": {"type": "string"}},
        ]})
    }
}

impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return match self {
                Self::Str(v) => s.serialize_str(v),
                Self::Int(v) => s.serialize_i64(*v),
                Self::Float(v) => s.serialize_f64(*v),
                Self::Bool(v) => s.serialize_bool(*v),
                Self::List(v) => v.serialize(s),
            };
        }
        match self {
            Self::Str(v) => TaggedRef::Str(v),
            Self::Int(v) => TaggedRef::Int(*v),
            Self::Float(v) => TaggedRef::Float(*v),
            Self::Bool(v) => TaggedRef::Bool(*v),
            Self::List(v) => TaggedRef::List(v),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return d.deserialize_any(PlainVisitor);
        }
        Ok(match Tagged::deserialize(d)? {
            Tagged::Str(v) => Self::Str(v),
            Tagged::Int(v) => Self::Int(v),
            Tagged::Float(v) => Self::Float(v),
            Tagged::Bool(v) => Self::Bool(v),
            Tagged::List(v) => Self::List(v),
        })
    }
}

struct PlainVisitor;

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = ParamValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number, boolean or list of strings")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ParamValue, E> {
        Ok(ParamValue::Str(v.to_owned()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ParamValue, E> {
        Ok(ParamValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ParamValue, E> {
        Ok(ParamValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ParamValue, E> {
        Ok(i64::try_from(v).map_or(ParamValue::Float(v as f64), ParamValue::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ParamValue, E> {
        Ok(ParamValue::Float(v))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<ParamValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<String>()? {
            items.push(item);
        }
        Ok(ParamValue::List(items))
    }
}

/// How an action is carried out. On a playbook: what it asks for; on an action: what
/// actually happens to it (an `auto` playbook's action that waits for a person is `approval`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Run without asking (within the blast-radius guard and approval thresholds).
    Auto,
    /// Wait for a human's approval (`approve` is read as a synonym in playbooks).
    #[serde(alias = "approve")]
    Approval,
    /// Only tell people; the action stays `proposed` until someone approves it.
    Notify,
    /// Record what would be done; never run.
    DryRun,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Approval => "approval",
            Self::Notify => "notify",
            Self::DryRun => "dry_run",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        if s == "approve" {
            return Some(Self::Approval);
        }
        [Self::Auto, Self::Approval, Self::Notify, Self::DryRun]
            .into_iter()
            .find(|m| m.as_str() == s)
    }

    /// What happens to an action that starts in `status`.
    pub fn of_status(status: ActionStatus) -> Self {
        match status {
            ActionStatus::PendingApproval => Self::Approval,
            ActionStatus::Proposed => Self::Notify,
            ActionStatus::DryRun => Self::DryRun,
            _ => Self::Auto,
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    Proposed,
    PendingApproval,
    Approved,
    Rejected,
    Executing,
    Succeeded,
    Failed,
    Undone,
    Expired,
    DryRun,
    /// Terminal: the effect needs a control point that is not attached, so nothing was
    /// applied; people carry it out (the result says how). Last, so older snapshots decode.
    Recorded,
}

impl ActionStatus {
    pub const ALL: [ActionStatus; 11] = [
        Self::Proposed,
        Self::PendingApproval,
        Self::Approved,
        Self::Rejected,
        Self::Executing,
        Self::Succeeded,
        Self::Failed,
        Self::Undone,
        Self::Expired,
        Self::DryRun,
        Self::Recorded,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::PendingApproval => "pending_approval",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Executing => "executing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Undone => "undone",
            Self::Expired => "expired",
            Self::DryRun => "dry_run",
            Self::Recorded => "recorded",
        }
    }

    /// No further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Rejected
                | Self::Failed
                | Self::Undone
                | Self::Expired
                | Self::DryRun
                | Self::Recorded
        )
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the executor reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ActionResult {
    pub ok: bool,
    pub message: String,
    /// When the result arrived (ms since the epoch).
    pub ts: i64,
}

/// Why an action exists and why it sits where it does in the ladder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Why {
    pub playbook: String,
    /// The trigger that matched (kinds / diagnoses / risk) and the step.
    pub rule: String,
    /// One sentence for people.
    pub text: String,
    /// The numbers behind the decision: risk, confidence, ladder position, Beta arm counts,
    /// the Thompson draw, guard counts.
    pub numbers: BTreeMap<String, f64>,
}

/// An action as the API shows it: `{"id", "incident", "kind", "target", "params", "mode",
/// "status", "ttl", "executor", "result", "why"}`; `ttl` is in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Action {
    pub id: String,
    pub incident: String,
    pub kind: ActionKind,
    pub target: String,
    pub params: Params,
    pub mode: Mode,
    pub status: ActionStatus,
    pub ttl: u64,
    pub executor: String,
    pub result: Option<ActionResult>,
    pub why: Why,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn kinds_round_trip_names() {
        for k in ActionKind::ALL {
            assert_eq!(ActionKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(ActionKind::parse("nuke"), None);
    }

    #[test]
    fn schema_reports_every_problem() {
        let errs = ActionKind::RateLimit
            .validate_params(&params(r#"{"per":"fortnight","burst":3}"#))
            .unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("unknown parameter `burst`")));
        assert!(errs.iter().any(|e| e.contains("needs parameter `rate`")));
        assert!(errs.iter().any(|e| e.contains("`fortnight` is not one of")));
        assert!(ActionKind::RateLimit
            .validate_params(&params(r#"{"rate":10,"per":"minute"}"#))
            .is_ok());
    }

    #[test]
    fn schema_types() {
        let bad = [
            (ActionKind::Webhook, r#"{"url":"ftp://x"}"#),
            (
                ActionKind::Webhook,
                r#"{"url":"https://x","secret":"hunter2"}"#,
            ),
            (ActionKind::Command, r#"{"argv":[]}"#),
            (ActionKind::BudgetCap, r#"{"usd":-1}"#),
            (ActionKind::Signal, r#"{"signal":"BOOM"}"#),
            (ActionKind::Reset, r#"{"memory":"yes"}"#),
        ];
        for (k, p) in bad {
            assert!(k.validate_params(&params(p)).is_err(), "{k} {p}");
        }
        let good = [
            (
                ActionKind::Webhook,
                r#"{"url":"https://x","secret":"env:HOOK"}"#,
            ),
            (
                ActionKind::Command,
                r#"{"argv":["nft","add"],"undo_argv":["nft","delete"]}"#,
            ),
            (ActionKind::BudgetCap, r#"{"usd":2.5}"#),
            (ActionKind::Signal, r#"{"signal":"TERM"}"#),
        ];
        for (k, p) in good {
            assert!(k.validate_params(&params(p)).is_ok(), "{k} {p}");
        }
    }

    #[test]
    fn targets_and_reversibility() {
        assert!(ActionKind::BlockIp.validate_target("10.0.0.1").is_ok());
        assert!(ActionKind::BlockIp.validate_target("10.0.0.0/24").is_ok());
        assert!(ActionKind::BlockIp.validate_target("agent:x").is_err());
        assert!(ActionKind::Quarantine.validate_target("").is_err());
        assert!(ActionKind::BlockIp.is_reversible(&Params::new()));
        assert!(!ActionKind::Reset.is_reversible(&Params::new()));
        assert!(!ActionKind::Command.is_reversible(&params(r#"{"argv":["x"]}"#)));
        assert!(ActionKind::Command.is_reversible(&params(r#"{"argv":["x"],"undo_argv":["y"]}"#)));
    }

    #[test]
    fn params_are_plain_in_json_and_tagged_in_postcard() {
        let p = params(r#"{"a":"x","b":5,"c":2.5,"d":true,"e":["x","y"]}"#);
        assert_eq!(p["b"], ParamValue::Int(5));
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"a":"x","b":5,"c":2.5,"d":true,"e":["x","y"]}"#
        );
        let bytes = postcard::to_stdvec(&p).unwrap();
        assert_eq!(postcard::from_bytes::<Params>(&bytes).unwrap(), p);
    }

    #[test]
    fn action_json_has_the_api_fields() {
        let a = Action {
            id: "a-1".into(),
            incident: "i-1".into(),
            kind: ActionKind::BlockIp,
            target: "1.2.3.4".into(),
            params: Params::new(),
            mode: Mode::Auto,
            status: ActionStatus::PendingApproval,
            ttl: 3600,
            executor: "block_ip".into(),
            result: None,
            why: Why {
                playbook: "p".into(),
                rule: "r".into(),
                text: "t".into(),
                numbers: BTreeMap::new(),
            },
        };
        let v = serde_json::to_value(&a).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = vec![
            "id", "incident", "kind", "target", "params", "mode", "status", "ttl", "executor",
            "result", "why",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(v["status"], "pending_approval");
        let bytes = postcard::to_stdvec(&a).unwrap();
        assert_eq!(postcard::from_bytes::<Action>(&bytes).unwrap(), a);
    }
}
