//! Executor behaviour: pull-based partial runs, content-addressed caching (counted executions),
//! cooperative cancellation, runtime errors as data.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use unilip_core::{
    validate, Event, ExecCtx, Executor, GraphDoc, Node, NodeError, NodeSchema, ParamSpec, PortSpec,
    PortType, Registry, RunOptions, Value,
};
use unilip_nodes::nodes::scalar::{FloatConst, FloatMath};

/// Counts its steps; each step sleeps 20 ms and checks for cancellation.
struct Slow {
    schema: NodeSchema,
    steps_run: Arc<AtomicUsize>,
}

impl Node for Slow {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }
    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let n = ctx.int("steps")? as u64;
        for i in 0..n {
            std::thread::sleep(Duration::from_millis(20));
            self.steps_run.fetch_add(1, Ordering::SeqCst);
            ctx.progress(i + 1, n, None)?;
        }
        let a = ctx
            .input("a")?
            .as_float()
            .map_err(|e| NodeError::msg(e.to_string()))?;
        if a.is_nan() {
            return Err(NodeError::msg("input is NaN"));
        }
        Ok(vec![Value::Float(a * 2.0)])
    }
}

fn registry(steps_run: Arc<AtomicUsize>) -> Registry {
    let slow = Slow {
        schema: NodeSchema {
            id: "test.slow".into(),
            version: 1,
            category: "test".into(),
            description: "slow doubling".into(),
            inputs: vec![PortSpec::new("a", PortType::Float, "")],
            outputs: vec![PortSpec::new("value", PortType::Float, "")],
            params: vec![ParamSpec::int("steps", 3, 0, 10_000, "")],
            output_node: false,
        },
        steps_run,
    };
    Registry::from_nodes(vec![
        Box::new(FloatConst::new()) as Box<dyn Node>,
        Box::new(FloatMath::new()),
        Box::new(slow),
    ])
}

/// src ─┬─ left (math) ── slow
///      └─ right (math)
fn diamond() -> GraphDoc {
    GraphDoc::from_ron(
        r#"(format: 1, nodes: {
            "src": (type: "scalar.float", version: 1, params: {"value": 1.5}),
            "left": (type: "scalar.math", version: 1, params: {"op": "add", "b": 1.0}),
            "right": (type: "scalar.math", version: 1, params: {"op": "multiply", "b": 3.0}),
            "slow": (type: "test.slow", version: 1, params: {"steps": 2}),
        }, edges: [
            "src.value -> left.a",
            "src.value -> right.a",
            "left.value -> slow.a",
        ])"#,
        "diamond",
    )
    .unwrap()
}

fn float_of(report: &unilip_core::RunReport, node: &str) -> f64 {
    report.outputs[node][0].as_float().unwrap()
}

#[test]
fn cache_reruns_nothing_then_only_descendants_of_a_change() {
    let reg = registry(Arc::default());
    let mut doc = diamond();
    let mut exec = Executor::default();
    let all = RunOptions {
        targets: vec!["slow".into(), "right".into()],
        ..Default::default()
    };
    let g = validate(&doc, &reg).unwrap();
    let first = exec.run(&g, &all).unwrap();
    assert_eq!(first.executed.len(), 4);
    assert_eq!(float_of(&first, "slow"), 5.0);
    assert_eq!(float_of(&first, "right"), 4.5);

    let again = exec.run(&g, &all).unwrap();
    assert!(
        again.executed.is_empty(),
        "unchanged re-run executed {:?}",
        again.executed
    );
    assert_eq!(float_of(&again, "slow"), 5.0);

    doc.nodes
        .get_mut("left")
        .unwrap()
        .params
        .insert("b".into(), unilip_core::ParamValue::Float(2.0));
    let g = validate(&doc, &reg).unwrap();
    let changed = exec.run(&g, &all).unwrap();
    let mut ran = changed.executed.clone();
    ran.sort();
    assert_eq!(ran, vec!["left".to_string(), "slow".to_string()]);
    assert_eq!(float_of(&changed, "slow"), 7.0);
}

#[test]
fn pulls_only_what_the_requested_output_needs() {
    let reg = registry(Arc::default());
    let g = validate(&diamond(), &reg).unwrap();
    let mut exec = Executor::default();
    let opts = RunOptions {
        targets: vec!["right".into()],
        ..Default::default()
    };
    let report = exec.run(&g, &opts).unwrap();
    let mut ran = report.executed.clone();
    ran.sort();
    assert_eq!(ran, vec!["right".to_string(), "src".to_string()]);
}

#[test]
fn renaming_a_node_keeps_its_cache_entry() {
    let reg = registry(Arc::default());
    let mut exec = Executor::default();
    let doc = diamond();
    exec.run(&validate(&doc, &reg).unwrap(), &RunOptions::default())
        .unwrap();
    let renamed = GraphDoc::from_ron(&doc.to_ron().replace("right", "r2"), "renamed").unwrap();
    let report = exec
        .run(&validate(&renamed, &reg).unwrap(), &RunOptions::default())
        .unwrap();
    assert!(report.executed.is_empty(), "{:?}", report.executed);
}

#[test]
fn cancellation_stops_a_long_node_within_its_next_step() {
    let steps_run = Arc::new(AtomicUsize::new(0));
    let reg = registry(steps_run.clone());
    let mut doc = diamond();
    doc.nodes
        .get_mut("slow")
        .unwrap()
        .params
        .insert("steps".into(), unilip_core::ParamValue::Int(1000));
    let g = validate(&doc, &reg).unwrap();
    let opts = RunOptions {
        targets: vec!["slow".into()],
        ..Default::default()
    };
    let cancel = opts.cancel.clone();
    let opts = RunOptions {
        events: Some(Arc::new(move |e: &Event| {
            if let Event::NodeProgress { step: 3, .. } = e {
                cancel.cancel();
            }
        })),
        ..opts
    };
    let err = Executor::default().run(&g, &opts).unwrap_err();
    assert!(err.cancelled, "{err:?}");
    assert_eq!(err.node, "slow");
    assert_eq!(
        steps_run.load(Ordering::SeqCst),
        3,
        "stopped right after the step that cancelled"
    );
}

#[test]
fn runtime_errors_are_data_with_inputs() {
    let reg = registry(Arc::default());
    let mut doc = diamond();
    let right = doc.nodes.get_mut("right").unwrap();
    right
        .params
        .insert("op".into(), unilip_core::ParamValue::Str("divide".into()));
    right
        .params
        .insert("b".into(), unilip_core::ParamValue::Float(0.0));
    let g = validate(&doc, &reg).unwrap();
    let err = Executor::default()
        .run(
            &g,
            &RunOptions {
                targets: vec!["right".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        (err.node.as_str(), err.type_id.as_str()),
        ("right", "scalar.math")
    );
    assert!(err.message.contains("division by zero"), "{}", err.message);
    assert_eq!(err.inputs, vec![("a".to_string(), "1.5".to_string())]);
}

#[test]
fn byte_budget_evicts_least_recently_used() {
    let reg = registry(Arc::default());
    // Each float result is 8 bytes: a 16-byte budget keeps two entries.
    let mut exec = Executor::new(16);
    let g = validate(&diamond(), &reg).unwrap();
    exec.run(
        &g,
        &RunOptions {
            targets: vec!["right".into(), "left".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert!(exec.cache.used_bytes() <= 16);
    assert_eq!(exec.cache.len(), 2);
}
