//! An agent's spans grouped into tasks, one `vitals` event per finished task.
//!
//! A task is the spans of one agent (entity) in one trace. It ends with the agent's
//! `invoke_agent` span, or with the trace's root span (any span without a parent, GenAI or
//! not), whichever comes first; children end before their parents, so by then the task's
//! spans have arrived, in this export or in earlier ones — which is why unfinished tasks are
//! kept here between requests. A task that sees no new span for [`IDLE_MS`] and never
//! meets its root (the root lives in another service) is reported with what it holds at its
//! tenant's next export.
//!
//! The vitals carry what the per-call `llm` events do not, so no baseline mixes one call with
//! a whole task and a budget never counts a dollar twice: `task_ms` (the agent span's
//! duration, else from the task's first start to its last end), `tokens` (input + output of
//! its model calls, else the agent span's own usage), `llm_calls`, `tool_calls`, `errors`;
//! attrs `agent`, `trace_id`, `tools` (distinct tool names, comma-separated), `model` (the
//! last one used), `conversation`, `source: "otlp"`. Its id is
//! `otlp:<trace_id>:<root span_id>:task`, so a retried export adds it once; a span already
//! counted in a task is not counted again.
//!
//! [`TaskTable::plan`] computes without changing anything; [`TaskTable::apply`] folds the
//! spans in once the events are durable, so a refused request (429, 503) leaves the table as
//! it was for the exporter's retry. The table lives in memory: after a crash, a task whose
//! spans straddled it counts only the spans exported after the restart (each span's own
//! `llm` event is durable either way).

use super::genai::Operation;
use antibody_core::ingest::Limits;
use antibody_core::{AttrValue, Event, TenantId, TimestampMs};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// A task with no new span for this long is reported without its root.
pub const IDLE_MS: i64 = 60_000;
/// Unfinished tasks kept across all tenants; past it new ones are not tracked. With
/// [`MAX_SPAN_IDS`] this bounds the table to tens of MB whatever is sent.
pub const MAX_TASKS: usize = 20_000;
/// Span ids remembered per task to skip re-counting a retried export (a bigger task's
/// further spans are counted without it).
pub const MAX_SPAN_IDS: usize = 256;
/// Distinct tool names listed per task.
const MAX_TOOLS: usize = 32;
/// How often a tenant's idle tasks are looked for.
const SWEEP_MS: i64 = 1_000;

/// One span's part in its task, as the span mapping saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// `None` for a non-GenAI span: it only ends tasks, when it is the trace's root.
    pub entity: Option<String>,
    pub operation: Option<Operation>,
    pub trace_root: bool,
    pub end_ms: TimestampMs,
    pub duration_ms: Option<f64>,
    pub error: bool,
    /// Input + output tokens, when the span reports usage.
    pub tokens: Option<f64>,
    pub tool: Option<String>,
    pub model: Option<String>,
    pub conversation: Option<String>,
}

#[derive(Clone, Debug, Default)]
struct Task {
    first_span: Option<[u8; 8]>,
    seen: HashSet<[u8; 8]>,
    llm_calls: u32,
    tool_calls: u32,
    errors: u32,
    tokens: Option<f64>,
    /// The agent span's own usage, used when the task has no model call of its own.
    agent_tokens: Option<f64>,
    tools: BTreeSet<String>,
    model: Option<String>,
    conversation: Option<String>,
    start_ms: Option<f64>,
    end_ms: TimestampMs,
    touched_ms: TimestampMs,
}

impl Task {
    /// Counts a span once; false when it was counted before.
    fn add(&mut self, s: &TaskSpan, now: TimestampMs) -> bool {
        if self.seen.contains(&s.span_id) {
            return false;
        }
        if self.seen.len() < MAX_SPAN_IDS {
            self.seen.insert(s.span_id);
        }
        self.first_span.get_or_insert(s.span_id);
        self.touched_ms = now;
        self.end_ms = self.end_ms.max(s.end_ms);
        let start = s.duration_ms.map(|d| s.end_ms as f64 - d);
        self.start_ms = match (self.start_ms, start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.errors += u32::from(s.error);
        match &s.operation {
            Some(Operation::ModelCall(_)) => {
                self.llm_calls += 1;
                if let Some(t) = s.tokens {
                    self.tokens = Some(self.tokens.unwrap_or(0.0) + t);
                }
            }
            Some(Operation::Tool) => {
                self.tool_calls += 1;
                if let Some(tool) = &s.tool {
                    if self.tools.len() < MAX_TOOLS {
                        self.tools.insert(tool.clone());
                    }
                }
            }
            Some(Operation::InvokeAgent) => self.agent_tokens = s.tokens,
            _ => {}
        }
        if s.model.is_some() {
            self.model.clone_from(&s.model);
        }
        if s.conversation.is_some() {
            self.conversation.clone_from(&s.conversation);
        }
        true
    }
}

type TraceKey = (TenantId, [u8; 16]);
/// A trace's unfinished tasks by entity.
type Trace = BTreeMap<String, Task>;

/// Unfinished tasks between requests.
#[derive(Debug, Default)]
pub struct TaskTable {
    traces: HashMap<TraceKey, Trace>,
    last_sweep: HashMap<TenantId, TimestampMs>,
    /// Tasks in `traces`, all traces together.
    held: usize,
}

/// What one request does to the table: the vitals of the tasks it finishes, and the new
/// state of the traces it touches.
#[derive(Debug, Default)]
pub struct Plan {
    pub events: Vec<Event>,
    touched: Vec<(TraceKey, Trace)>,
    swept: Option<(TenantId, TimestampMs)>,
}

impl TaskTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Unfinished tasks held.
    pub fn len(&self) -> usize {
        self.held
    }

    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// The vitals `spans` finish, and the table after them; nothing changes until [`apply`].
    ///
    /// [`apply`]: TaskTable::apply
    pub fn plan(
        &self,
        tenant: &TenantId,
        spans: &[TaskSpan],
        now: TimestampMs,
        limits: &Limits,
    ) -> Plan {
        let mut work: HashMap<TraceKey, Trace> = HashMap::new();
        let trace = |id: [u8; 16]| -> TraceKey { (tenant.clone(), id) };
        for s in spans {
            let Some(entity) = &s.entity else { continue };
            let key = trace(s.trace_id);
            let tasks = work
                .entry(key.clone())
                .or_insert_with(|| self.traces.get(&key).cloned().unwrap_or_default());
            tasks.entry(entity.clone()).or_default().add(s, now);
        }
        let mut events = Vec::new();
        for s in spans {
            let key = trace(s.trace_id);
            let agent_root = s.operation == Some(Operation::InvokeAgent);
            if !(agent_root || s.trace_root) {
                continue;
            }
            let tasks = work
                .entry(key.clone())
                .or_insert_with(|| self.traces.get(&key).cloned().unwrap_or_default());
            let ended: Vec<String> = match (&s.entity, agent_root) {
                (Some(e), true) => vec![e.clone()],
                _ => tasks.keys().cloned().collect(),
            };
            for entity in ended {
                if let Some(task) = tasks.remove(&entity) {
                    events.push(vitals(tenant, &key.1, &entity, &task, Some(s), limits));
                }
            }
        }
        let swept = self.sweep(tenant, now, &work, limits, &mut events);
        Plan {
            events,
            touched: work.into_iter().collect(),
            swept,
        }
    }

    /// The tenant's idle tasks (not touched by this request) are finished without a root.
    fn sweep(
        &self,
        tenant: &TenantId,
        now: TimestampMs,
        work: &HashMap<TraceKey, Trace>,
        limits: &Limits,
        events: &mut Vec<Event>,
    ) -> Option<(TenantId, TimestampMs)> {
        let last = self.last_sweep.get(tenant).copied().unwrap_or(i64::MIN);
        if !antibody_core::clock::is_due(now, last, SWEEP_MS) {
            return None;
        }
        for (key, tasks) in &self.traces {
            if key.0 != *tenant || work.contains_key(key) {
                continue;
            }
            for (entity, task) in tasks {
                if now.saturating_sub(task.touched_ms) >= IDLE_MS {
                    events.push(vitals(tenant, &key.1, entity, task, None, limits));
                }
            }
        }
        Some((tenant.clone(), now))
    }

    /// Folds `spans` in for good, once the events of their [`plan`](TaskTable::plan) are
    /// durable. It plans again against the table as it is now, so two requests of one trace
    /// that overlapped both count; returns how many new tasks did not fit under
    /// [`MAX_TASKS`] (their spans' `llm` events are kept all the same).
    pub fn apply(
        &mut self,
        tenant: &TenantId,
        spans: &[TaskSpan],
        now: TimestampMs,
        limits: &Limits,
    ) -> usize {
        let plan = self.plan(tenant, spans, now, limits);
        self.keep(plan)
    }

    fn keep(&mut self, plan: Plan) -> usize {
        let mut dropped = 0;
        if let Some((tenant, now)) = plan.swept {
            let held = &mut self.held;
            self.traces.retain(|key, tasks| {
                if key.0 == tenant {
                    let before = tasks.len();
                    tasks.retain(|_, t| now.saturating_sub(t.touched_ms) < IDLE_MS);
                    *held -= before - tasks.len();
                }
                !tasks.is_empty()
            });
            self.last_sweep.insert(tenant, now);
        }
        for (key, mut tasks) in plan.touched {
            let old = self.traces.remove(&key).unwrap_or_default();
            self.held -= old.len();
            // Tasks already held keep their place; new ones only while there is room.
            let kept = tasks.keys().filter(|e| old.contains_key(*e)).count();
            let mut room = MAX_TASKS.saturating_sub(self.held + kept);
            tasks.retain(|entity, _| {
                let keep = old.contains_key(entity) || room > 0;
                if !old.contains_key(entity) {
                    room = room.saturating_sub(1);
                }
                dropped += usize::from(!keep);
                keep
            });
            self.held += tasks.len();
            if !tasks.is_empty() {
                self.traces.insert(key, tasks);
            }
        }
        dropped
    }
}

fn vitals(
    tenant: &TenantId,
    trace: &[u8; 16],
    entity: &str,
    task: &Task,
    root: Option<&TaskSpan>,
    limits: &Limits,
) -> Event {
    let agent_root = root.filter(|r| r.operation == Some(Operation::InvokeAgent));
    let task_ms = agent_root
        .and_then(|r| r.duration_ms)
        .or_else(|| task.start_ms.map(|s| (task.end_ms as f64 - s).max(0.0)));
    let mut metrics = Vec::with_capacity(5);
    if let Some(ms) = task_ms {
        metrics.push(("task_ms".to_owned(), ms));
    }
    if let Some(t) = task.tokens.or(task.agent_tokens) {
        metrics.push(("tokens".to_owned(), t));
    }
    metrics.push(("llm_calls".to_owned(), f64::from(task.llm_calls)));
    metrics.push(("tool_calls".to_owned(), f64::from(task.tool_calls)));
    metrics.push(("errors".to_owned(), f64::from(task.errors)));
    let s = |v: &str| AttrValue::Str(v.to_owned());
    let mut attrs = vec![
        ("source".to_owned(), s("otlp")),
        (
            "agent".to_owned(),
            s(entity.strip_prefix("agent:").unwrap_or(entity)),
        ),
        ("trace_id".to_owned(), s(&super::to_hex(trace))),
    ];
    let tools = joined(&task.tools, limits.max_string_bytes);
    if !tools.is_empty() {
        attrs.push(("tools".to_owned(), AttrValue::Str(tools)));
    }
    if let Some(m) = &task.model {
        attrs.push(("model".to_owned(), s(m)));
    }
    if let Some(c) = &task.conversation {
        attrs.push(("conversation".to_owned(), s(c)));
    }
    let root_span = root
        .map(|r| r.span_id)
        .or(task.first_span)
        .unwrap_or_default();
    Event {
        tenant: tenant.clone(),
        ts: root.map_or(task.end_ms, |r| r.end_ms.max(task.end_ms)),
        entity: entity.to_owned(),
        kind: "vitals".into(),
        metrics,
        attrs,
        id: Some(format!(
            "otlp:{}:{}:task",
            super::to_hex(trace),
            super::to_hex(&root_span)
        )),
    }
}

/// Names joined by commas while they fit in `max` bytes.
fn joined(names: &BTreeSet<String>, max: usize) -> String {
    let mut out = String::new();
    for n in names {
        let extra = n.len() + usize::from(!out.is_empty());
        if out.len() + extra > max {
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(n);
    }
    out
}
