//! The `gen_ai.*` attributes of one span or log record, read in one pass, new semantic
//! conventions preferred over the older names they replaced.

use super::proto::{AnyValue, KeyValue, Value};
use std::borrow::Cow;

/// What a GenAI span does (`gen_ai.operation.name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `chat`, `text_completion`, `generate_content`, `embeddings`: one call to a model.
    ModelCall(String),
    /// `execute_tool`.
    Tool,
    /// `invoke_agent`: an agent doing one task, the root of that task's spans.
    InvokeAgent,
    /// Anything else (`create_agent`, retrieval, memory, …), kept by name.
    Other(String),
}

impl Operation {
    fn parse(name: &str) -> Operation {
        match name {
            "chat" | "text_completion" | "generate_content" | "embeddings" => {
                Operation::ModelCall(name.to_owned())
            }
            "execute_tool" => Operation::Tool,
            "invoke_agent" => Operation::InvokeAgent,
            other => Operation::Other(other.to_owned()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Operation::ModelCall(n) | Operation::Other(n) => n,
            Operation::Tool => "execute_tool",
            Operation::InvokeAgent => "invoke_agent",
        }
    }
}

/// The GenAI facts of one span or log record, borrowed from the decoded request. Token
/// counts are whole numbers ≥ 0.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Call<'a> {
    /// True when any `gen_ai.*` attribute was present.
    pub is_gen_ai: bool,
    pub operation: Option<Operation>,
    /// `gen_ai.provider.name`, else the older `gen_ai.system`.
    pub provider: Option<&'a str>,
    pub request_model: Option<&'a str>,
    pub response_model: Option<&'a str>,
    pub input_tokens: Option<f64>,
    pub output_tokens: Option<f64>,
    pub cache_read_tokens: Option<f64>,
    pub cache_write_tokens: Option<f64>,
    pub reasoning_tokens: Option<f64>,
    /// `gen_ai.response.time_to_first_chunk`, seconds.
    pub ttft_s: Option<f64>,
    pub stream: Option<bool>,
    pub tool: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    pub agent_name: Option<&'a str>,
    pub conversation: Option<&'a str>,
    /// `gen_ai.usage.cost` (USD), only when the sender priced the call itself.
    pub cost_usd: Option<f64>,
    pub error_type: Option<&'a str>,
    /// Text of `gen_ai.input.messages` (or the older `gen_ai.prompt`), opt-in content.
    pub prompt: Option<Cow<'a, str>>,
    /// Text of `gen_ai.system_instructions`, opt-in content.
    pub system: Option<Cow<'a, str>>,
}

/// Newer name first: an attribute from the list is taken only when no earlier one was seen.
#[derive(Default)]
struct Ranked<T> {
    value: Option<T>,
    rank: usize,
}

impl<T> Ranked<T> {
    fn offer(&mut self, rank: usize, v: Option<T>) {
        if let Some(v) = v {
            if self.value.is_none() || rank < self.rank {
                self.value = Some(v);
                self.rank = rank;
            }
        }
    }
}

#[derive(Default)]
struct Draft<'a> {
    provider: Ranked<&'a str>,
    input: Ranked<f64>,
    output: Ranked<f64>,
    cache_read: Ranked<f64>,
    cache_write: Ranked<f64>,
    reasoning: Ranked<f64>,
    ttft: Ranked<f64>,
    prompt: Ranked<Cow<'a, str>>,
}

impl<'a> Call<'a> {
    /// Reads the attributes; unrelated ones are skipped, badly typed ones ignored.
    pub fn read(attrs: &'a [KeyValue]) -> Call<'a> {
        let mut call = Call::default();
        let mut d = Draft::default();
        for kv in attrs {
            let Some(rest) = kv.key.strip_prefix("gen_ai.") else {
                if kv.key == "error.type" {
                    call.error_type = text(kv.value.as_ref());
                }
                continue;
            };
            call.is_gen_ai = true;
            let v = kv.value.as_ref();
            match rest {
                "operation.name" => call.operation = text(v).map(Operation::parse),
                "provider.name" => d.provider.offer(0, text(v)),
                "system" => d.provider.offer(1, text(v)),
                "request.model" => call.request_model = text(v),
                "response.model" => call.response_model = text(v),
                "usage.input_tokens" => d.input.offer(0, count(v)),
                "usage.prompt_tokens" => d.input.offer(1, count(v)),
                "usage.output_tokens" => d.output.offer(0, count(v)),
                "usage.completion_tokens" => d.output.offer(1, count(v)),
                "usage.cache_read.input_tokens" => d.cache_read.offer(0, count(v)),
                "usage.input_tokens.cached" => d.cache_read.offer(1, count(v)),
                "usage.cache_read_input_tokens" => d.cache_read.offer(2, count(v)),
                "usage.cache_write.input_tokens" => d.cache_write.offer(0, count(v)),
                "usage.cache_creation.input_tokens" => d.cache_write.offer(1, count(v)),
                "usage.input_tokens.cache_write" => d.cache_write.offer(2, count(v)),
                "usage.cache_creation_input_tokens" => d.cache_write.offer(3, count(v)),
                "usage.reasoning.output_tokens" => d.reasoning.offer(0, count(v)),
                "usage.output_tokens.reasoning" => d.reasoning.offer(1, count(v)),
                "usage.reasoning_tokens" => d.reasoning.offer(2, count(v)),
                "usage.cost" => call.cost_usd = number(v).filter(|c| *c >= 0.0),
                "response.time_to_first_chunk" => d.ttft.offer(0, number(v)),
                "response.time_to_first_token" => d.ttft.offer(1, number(v)),
                "request.stream" | "response.streaming" => call.stream = boolean(v),
                "tool.name" => call.tool = text(v),
                "agent.id" => call.agent_id = text(v),
                "agent.name" => call.agent_name = text(v),
                "conversation.id" => call.conversation = text(v),
                "input.messages" => d.prompt.offer(0, flat_text(v)),
                "prompt" => d.prompt.offer(1, flat_text(v)),
                "system_instructions" => call.system = flat_text(v),
                _ => {}
            }
        }
        call.provider = d.provider.value;
        call.input_tokens = d.input.value;
        call.output_tokens = d.output.value;
        call.cache_read_tokens = d.cache_read.value;
        call.cache_write_tokens = d.cache_write.value;
        call.reasoning_tokens = d.reasoning.value;
        call.ttft_s = d.ttft.value.filter(|t| *t >= 0.0);
        call.prompt = d.prompt.value;
        call
    }

    /// The model that answered, else the one asked for.
    pub fn model(&self) -> Option<&str> {
        self.response_model.or(self.request_model)
    }

    pub fn has_usage(&self) -> bool {
        self.input_tokens.is_some() || self.output_tokens.is_some()
    }

    /// The operation named, or what the attributes show when none is: usage or a model means
    /// a model call, a tool name a tool call.
    pub fn effective_operation(&self) -> Option<Operation> {
        match &self.operation {
            Some(op) => Some(op.clone()),
            None if self.has_usage() || self.request_model.is_some() => {
                Some(Operation::ModelCall("chat".into()))
            }
            None if self.tool.is_some() => Some(Operation::Tool),
            None => None,
        }
    }

    /// The agent this record names itself: `gen_ai.agent.id`, else `gen_ai.agent.name`.
    pub fn agent(&self) -> Option<&str> {
        self.agent_id.or(self.agent_name)
    }
}

/// A non-empty string value (numbers are not names: a model or agent id is a string).
pub fn text(v: Option<&AnyValue>) -> Option<&str> {
    match v?.value.as_ref()? {
        Value::String(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

fn number(v: Option<&AnyValue>) -> Option<f64> {
    let n = match v?.value.as_ref()? {
        Value::Int(i) => *i as f64,
        Value::Double(d) => *d,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// A token count: a finite, non-negative whole number.
fn count(v: Option<&AnyValue>) -> Option<f64> {
    number(v).filter(|n| *n >= 0.0 && n.fract() == 0.0)
}

fn boolean(v: Option<&AnyValue>) -> Option<bool> {
    match v?.value.as_ref()? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The text in a value: a string as it is, the strings of a structured value (messages as
/// arrays of parts) joined by newlines. Depth is bounded by the decoders already.
pub fn flat_text(v: Option<&AnyValue>) -> Option<Cow<'_, str>> {
    fn walk(v: &AnyValue, out: &mut String) {
        match &v.value {
            Some(Value::String(s)) => {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(s);
            }
            Some(Value::Array(a)) => a.values.iter().for_each(|x| walk(x, out)),
            Some(Value::KvList(l)) => l
                .values
                .iter()
                .filter_map(|kv| kv.value.as_ref())
                .for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let v = v?;
    if let Some(Value::String(s)) = &v.value {
        return (!s.is_empty()).then_some(Cow::Borrowed(s.as_str()));
    }
    let mut out = String::new();
    walk(v, &mut out);
    (!out.is_empty()).then_some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    #[test]
    fn new_names_win_over_old_ones_in_any_order() {
        let old_first = [
            kv("gen_ai.system", Value::String("openai".into())),
            kv(
                "gen_ai.provider.name",
                Value::String("azure.ai.openai".into()),
            ),
            kv("gen_ai.usage.prompt_tokens", Value::Int(9)),
            kv("gen_ai.usage.input_tokens", Value::Int(10)),
            kv("gen_ai.usage.cache_creation_input_tokens", Value::Int(1)),
            kv("gen_ai.usage.cache_write.input_tokens", Value::Int(2)),
        ];
        let mut new_first = old_first.clone();
        new_first.reverse();
        for attrs in [&old_first[..], &new_first[..]] {
            let c = Call::read(attrs);
            assert_eq!(c.provider, Some("azure.ai.openai"));
            assert_eq!(c.input_tokens, Some(10.0));
            assert_eq!(c.cache_write_tokens, Some(2.0));
        }
        let attrs = [
            kv("gen_ai.system", Value::String("anthropic".into())),
            kv("gen_ai.usage.completion_tokens", Value::String("7".into())),
            kv("gen_ai.usage.cache_creation.input_tokens", Value::Int(3)),
        ];
        let old_only = Call::read(&attrs);
        assert_eq!(old_only.provider, Some("anthropic"));
        assert_eq!(old_only.output_tokens, Some(7.0));
        assert_eq!(old_only.cache_write_tokens, Some(3.0));
    }

    #[test]
    fn bad_counts_are_ignored_and_operations_inferred() {
        let attrs = [
            kv("gen_ai.usage.input_tokens", Value::Double(-1.0)),
            kv("gen_ai.usage.output_tokens", Value::Double(1.5)),
            kv("gen_ai.request.model", Value::String("m".into())),
        ];
        let c = Call::read(&attrs);
        assert_eq!((c.input_tokens, c.output_tokens), (None, None));
        assert!(matches!(
            c.effective_operation(),
            Some(Operation::ModelCall(_))
        ));
        let attrs = [kv("gen_ai.tool.name", Value::String("search".into()))];
        let t = Call::read(&attrs);
        assert_eq!(t.effective_operation(), Some(Operation::Tool));
        let attrs = [kv("http.method", Value::String("GET".into()))];
        let none = Call::read(&attrs);
        assert!(!none.is_gen_ai);
        assert_eq!(none.effective_operation(), None);
    }

    #[test]
    fn structured_messages_flatten_to_their_text() {
        let part = |t: &str| AnyValue {
            value: Some(Value::KvList(super::super::proto::KeyValueList {
                values: vec![
                    kv("type", Value::String("text".into())),
                    kv("content", Value::String(t.into())),
                ],
            })),
        };
        let msgs = AnyValue {
            value: Some(Value::Array(super::super::proto::ArrayValue {
                values: vec![part("hello"), part("world")],
            })),
        };
        assert_eq!(
            flat_text(Some(&msgs)).as_deref(),
            Some("text\nhello\ntext\nworld")
        );
    }
}
