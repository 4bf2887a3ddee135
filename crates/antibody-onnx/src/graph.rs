//! Everything that touches tract: parsing the uploaded bytes, the sandbox checks on the graph,
//! fixing the input to `[N, k]` f32, and running a batch.
//!
//! tract is not hardened against hostile files: some of its loaders and shape inference
//! `unwrap()` or `unimplemented!()` on inputs they do not expect (e.g. a tensor of an
//! unsupported element type). Every call into it therefore runs under
//! [`std::panic::catch_unwind`], so an upload can only ever produce an error.

use crate::error::OnnxError;
use crate::spec::{OnnxSpec, OutputKind};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use tract_onnx::data_resolver::ModelDataResolver;
use tract_onnx::pb::{GraphProto, ModelProto};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// Rows per inference call: bounds the tensors a call allocates, and is the batch the time
/// limit is stated for.
pub const BATCH_ROWS: usize = 256;

/// Largest intermediate tensor a model may make on a [`BATCH_ROWS`]-row batch.
pub const MAX_TENSOR_BYTES: u64 = 64 << 20;

/// The name of the batch dimension antibody fixes the input to.
const ROWS_SYMBOL: &str = "antibody_rows";

/// Operators the sandbox refuses, and why.
const FORBIDDEN_OPS: [(&str, &str); 8] = [
    ("Loop", "its iteration count is not bounded"),
    ("Scan", "its iteration count is not bounded"),
    ("RandomNormal", "a detector must be deterministic"),
    ("RandomNormalLike", "a detector must be deterministic"),
    ("RandomUniform", "a detector must be deterministic"),
    ("RandomUniformLike", "a detector must be deterministic"),
    ("Multinomial", "a detector must be deterministic"),
    ("Bernoulli", "a detector must be deterministic"),
];

/// A model ready to run: input fixed to `[N, k]` f32, one f32 output of `width` columns.
pub(crate) struct Graph {
    plan: Arc<TypedRunnableModel>,
    features: usize,
    width: usize,
}

/// Refuses to read external tensor data: an upload is one file, and must not name others
/// on the server's disk.
struct NoExternalData;

impl ModelDataResolver for NoExternalData {
    fn read_bytes_from_path(
        &self,
        _: &mut Vec<u8>,
        p: &Path,
        _: usize,
        _: Option<usize>,
    ) -> TractResult<()> {
        tract_onnx::tract_hir::internal::bail!(
            "external tensor data ({p:?}) is not allowed: embed the weights in the model"
        )
    }
}

impl Graph {
    /// Parses and checks `bytes` against `spec`; any panic inside tract becomes an error.
    pub(crate) fn compile(bytes: &[u8], spec: &OnnxSpec) -> Result<Self, OnnxError> {
        match catch_unwind(AssertUnwindSafe(|| compile(bytes, spec))) {
            Ok(result) => result,
            Err(panic) => Err(OnnxError::Parse(format!(
                "tract panicked: {}",
                panic_message(&*panic)
            ))),
        }
    }

    /// Runs `n` rows (row-major, `features` each, `n <= BATCH_ROWS`) in one inference and
    /// returns `n * width` raw output values.
    pub(crate) fn run(&self, rows: &[f32]) -> Result<Vec<f32>, String> {
        let n = rows.len() / self.features;
        let input = Tensor::from_shape(&[n, self.features], rows).map_err(|e| e.to_string())?;
        let outputs = catch_unwind(AssertUnwindSafe(|| self.plan.run(tvec![input.into()])))
            .map_err(|p| format!("tract panicked: {}", panic_message(&*p)))?
            .map_err(|e| format!("{e:#}"))?;
        let out = outputs.first().ok_or("the model returned no output")?;
        let values = out
            .to_plain_array_view::<f32>()
            .map(|v| v.iter().copied().collect::<Vec<f32>>())
            .map_err(|e| e.to_string())?;
        if values.len() != n * self.width {
            return Err(format!(
                "the output has {} values for {n} rows of {} columns",
                values.len(),
                self.width
            ));
        }
        Ok(values)
    }

    /// Output columns per row: 1, or 2 for [`OutputKind::TwoClass`].
    pub(crate) fn width(&self) -> usize {
        self.width
    }
}

fn compile(bytes: &[u8], spec: &OnnxSpec) -> Result<Graph, OnnxError> {
    let mut onnx = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true);
    onnx.provider = Arc::new(NoExternalData);
    let proto = onnx
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| OnnxError::Parse(format!("not an ONNX protobuf: {e}")))?;
    check_ops(&proto)?;
    let mut model = onnx.model_for_proto_model(&proto).map_err(parse_err)?;
    let k = spec.features.len();
    check_input(&model, k)?;
    let rows = model.symbols.sym(ROWS_SYMBOL);
    let fact = InferenceFact::dt_shape(f32::datum_type(), tvec![rows.to_dim(), k.to_dim()]);
    model.set_input_fact(0, fact).map_err(parse_err)?;
    let mut typed = model.into_typed().map_err(parse_err)?;
    let width = select_output(&mut typed, spec.output, &rows)?;
    let typed = typed.into_decluttered().map_err(parse_err)?;
    check_tensor_sizes(&typed, &rows)?;
    let plan = typed
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(parse_err)?;
    Ok(Graph {
        plan,
        features: k,
        width,
    })
}

/// Refuses forbidden operators anywhere, subgraphs (of `If`) included.
fn check_ops(proto: &ModelProto) -> Result<(), OnnxError> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::Parse("the file holds no graph".into()))?;
    check_graph_ops(graph, 0)
}

fn check_graph_ops(graph: &GraphProto, depth: usize) -> Result<(), OnnxError> {
    // Protobuf nesting is bounded by the file size; this bounds our recursion too.
    if depth > 16 {
        return Err(OnnxError::Parse(
            "subgraphs nested more than 16 deep".into(),
        ));
    }
    for node in &graph.node {
        if let Some((op, why)) = FORBIDDEN_OPS.iter().find(|(op, _)| *op == node.op_type) {
            return Err(OnnxError::ForbiddenOp {
                op: (*op).to_string(),
                node: node.name.clone(),
                why,
            });
        }
        for attr in &node.attribute {
            for sub in attr.g.iter().chain(&attr.graphs) {
                check_graph_ops(sub, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// The declared input must be one f32 tensor `[?, k]` or `[1, k]` (undeclared parts pass:
/// typing the graph checks them).
fn check_input(model: &InferenceModel, k: usize) -> Result<(), OnnxError> {
    let expected = format!("one f32 input of shape [N, {k}] or [1, {k}]");
    if model.inputs.len() != 1 {
        return Err(OnnxError::InputShape {
            found: format!("list of {} inputs", model.inputs.len()),
            expected,
        });
    }
    let fact = model.input_fact(0).map_err(parse_err)?;
    let dt_ok = fact
        .datum_type
        .concretize()
        .is_none_or(|dt| dt == f32::datum_type());
    let dims: Vec<Option<TDim>> = fact.shape.dims().map(|d| d.concretize()).collect();
    let rank_ok = fact.shape.is_open() || dims.len() == 2;
    let batch_ok = match dims.first() {
        Some(Some(d)) => !matches!(d.to_i64(), Ok(v) if v != 1),
        _ => true,
    };
    let width_ok = match dims.get(1) {
        Some(Some(d)) => !matches!(d.to_i64(), Ok(v) if v != k as i64),
        _ => true,
    };
    if dt_ok && rank_ok && batch_ok && width_ok {
        return Ok(());
    }
    Err(OnnxError::InputShape {
        found: describe(fact),
        expected,
    })
}

/// `f32 [N, 3]`, with `?` for what the file leaves open.
fn describe(fact: &InferenceFact) -> String {
    let dt = fact
        .datum_type
        .concretize()
        .map_or("?".to_string(), |dt| format!("{dt:?}").to_lowercase());
    let mut dims: Vec<String> = fact
        .shape
        .dims()
        .map(|d| d.concretize().map_or("?".into(), |d| d.to_string()))
        .collect();
    if fact.shape.is_open() {
        dims.push("..".into());
    }
    format!("{dt} [{}]", dims.join(", "))
}

/// Keeps the first f32 output (exporters often add an integer label output first) and
/// checks its shape fits `kind`; returns its width.
fn select_output(
    model: &mut TypedModel,
    kind: OutputKind,
    rows: &Symbol,
) -> Result<usize, OnnxError> {
    let expected = match kind {
        OutputKind::Probability | OutputKind::Logit => "an f32 output of shape [N] or [N, 1]",
        OutputKind::TwoClass => "an f32 output of shape [N, 2]",
    };
    let mut chosen = None;
    for &outlet in &model.outputs {
        let fact = model.outlet_fact(outlet).map_err(parse_err)?;
        if fact.datum_type == f32::datum_type() {
            chosen = Some((outlet, fact.clone()));
            break;
        }
    }
    let Some((outlet, fact)) = chosen else {
        return Err(OnnxError::OutputShape {
            found: "(no f32 output)".into(),
            expected: expected.into(),
        });
    };
    // The batch dimension must follow the input's: evaluate at a row count no model
    // hard-codes, and compare.
    let at = SymbolValues::default().with(rows, BATCH_ROWS as i64 + 1);
    let dims: Vec<Option<i64>> = fact.shape.iter().map(|d| d.eval_to_i64(&at).ok()).collect();
    let n = Some(BATCH_ROWS as i64 + 1);
    let width = match (kind, dims.as_slice()) {
        (OutputKind::Probability | OutputKind::Logit, [d0]) if *d0 == n => 1,
        (OutputKind::Probability | OutputKind::Logit, [d0, Some(1)]) if *d0 == n => 1,
        (OutputKind::TwoClass, [d0, Some(2)]) if *d0 == n => 2,
        _ => {
            return Err(OnnxError::OutputShape {
                found: format!("f32 [{}]", join_dims(fact.shape.iter())),
                expected: expected.into(),
            })
        }
    };
    model.outputs = vec![outlet];
    Ok(width)
}

fn join_dims<'a>(dims: impl Iterator<Item = &'a TDim>) -> String {
    let v: Vec<String> = dims
        .map(|d| d.to_string().replace(ROWS_SYMBOL, "N"))
        .collect();
    v.join(", ")
}

/// Every tensor the graph makes must have a size known from the row count alone, and at
/// most [`MAX_TENSOR_BYTES`] on a full batch: memory is then bounded before anything runs.
fn check_tensor_sizes(model: &TypedModel, rows: &Symbol) -> Result<(), OnnxError> {
    let at = SymbolValues::default().with(rows, BATCH_ROWS as i64);
    for node in model.nodes() {
        for output in &node.outputs {
            let fact = &output.fact;
            let mut bytes = fact.datum_type.size_of() as u64;
            for d in fact.shape.iter() {
                let v = d.eval_to_i64(&at).map_err(|_| OnnxError::Unbounded {
                    node: node.name.clone(),
                    why: format!(
                        "its shape [{}] depends on the data, not only on the row count",
                        join_dims(fact.shape.iter())
                    ),
                })?;
                bytes = bytes.saturating_mul(u64::try_from(v).unwrap_or(u64::MAX));
            }
            if bytes > MAX_TENSOR_BYTES {
                return Err(OnnxError::Unbounded {
                    node: node.name.clone(),
                    why: format!(
                        "{bytes} bytes on a {BATCH_ROWS}-row batch, over {MAX_TENSOR_BYTES}"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// tract's error with its whole chain of context.
fn parse_err(e: TractError) -> OnnxError {
    OnnxError::Parse(format!("{e:#}"))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}
