//! Parameter sweeps (ablations): the cartesian product of param grids, each point run with one
//! [`Executor`] so results a point does not change (a loaded model, an encoded prompt) are
//! computed once; the number outputs named as metrics are collected into a [`SweepTable`] that
//! writes itself as CSV. Used by `unilip sweep` and by the editor's sweep panel.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::document::{GraphDoc, PortRef};
use crate::exec_ctx::{CancelToken, EventSink};
use crate::executor::{Executor, RunEnv, RunError, RunOptions};
use crate::params::{ParamProblem, ParamValue};
use crate::registry::Registry;
use crate::types::PortType;
use crate::validate::{validate, ValidationError};
use crate::value::Value;

/// One grid axis: a param of a node and the values it takes, as typed by the user. A linked
/// axis sets further params together with the first (one grid dimension): each value is then
/// either one value for all of them or `:`-separated values, one per param in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axis {
    /// Node id.
    pub node: String,
    /// Param name.
    pub param: String,
    /// Further `(node, param)` pairs set at the same time (empty for a plain axis).
    pub linked: Vec<(String, String)>,
    /// Values as typed; each is parsed by the param's [`crate::ParamSpec::parse`].
    pub values: Vec<String>,
}

impl Axis {
    /// Parses `NODE.PARAM=V1,V2,...`, or a linked axis `N1.P1,N2.P2=A1:A2,B1:B2` (values split
    /// on `,` and kept verbatim).
    pub fn parse(spec: &str) -> Result<Self, SweepError> {
        let bad = || SweepError::BadAxis(spec.to_string());
        let (lhs, values) = spec.split_once('=').ok_or_else(bad)?;
        let mut targets = lhs.split(',').map(|t| {
            t.split_once('.')
                .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                .map(|(n, p)| (n.to_string(), p.to_string()))
                .ok_or_else(bad)
        });
        let (node, param) = targets.next().ok_or_else(bad)??;
        Ok(Self {
            node,
            param,
            linked: targets.collect::<Result<_, _>>()?,
            values: values.split(',').map(str::to_string).collect(),
        })
    }

    /// Every `(node, param)` the axis sets, the first one first.
    pub fn targets(&self) -> Vec<(&str, &str)> {
        std::iter::once((self.node.as_str(), self.param.as_str()))
            .chain(self.linked.iter().map(|(n, p)| (n.as_str(), p.as_str())))
            .collect()
    }

    /// `node.param` (linked params joined by `+`), the axis' column name.
    pub fn name(&self) -> String {
        self.targets()
            .iter()
            .map(|(n, p)| format!("{n}.{p}"))
            .collect::<Vec<_>>()
            .join("+")
    }

    /// Parses every value against the params' declarations in `doc` (one parsed value per
    /// target); the first refusal is the error.
    pub fn check(
        &self,
        doc: &GraphDoc,
        registry: &Registry,
    ) -> Result<Vec<Vec<ParamValue>>, SweepError> {
        if self.values.is_empty() {
            return Err(SweepError::NoValues(self.name()));
        }
        let targets = self.targets();
        let specs = targets
            .iter()
            .map(|(node_id, param)| {
                let node = doc
                    .nodes
                    .get(*node_id)
                    .ok_or_else(|| SweepError::UnknownNode(node_id.to_string()))?;
                let def = registry
                    .get(&node.type_id)
                    .ok_or_else(|| SweepError::UnknownType {
                        node: node_id.to_string(),
                        type_id: node.type_id.clone(),
                    })?;
                def.schema()
                    .param(param)
                    .cloned()
                    .ok_or_else(|| SweepError::UnknownParam {
                        axis: format!("{node_id}.{param}"),
                        type_id: node.type_id.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.values
            .iter()
            .map(|v| {
                let parts: Vec<&str> = if targets.len() > 1 && v.contains(':') {
                    v.split(':').collect()
                } else {
                    vec![v.as_str(); targets.len()]
                };
                if parts.len() != targets.len() {
                    return Err(SweepError::LinkedArity {
                        axis: self.name(),
                        value: v.clone(),
                        params: targets.len(),
                    });
                }
                specs
                    .iter()
                    .zip(parts)
                    .map(|(spec, part)| {
                        spec.parse(part).map_err(|problem| SweepError::BadValue {
                            axis: self.name(),
                            value: v.clone(),
                            problem,
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

/// Parses a metric reference `NODE.OUTPUT`.
pub fn parse_metric(spec: &str) -> Result<PortRef, SweepError> {
    spec.split_once('.')
        .map(|(n, o)| PortRef::new(n, o))
        .ok_or_else(|| SweepError::BadMetric(spec.to_string()))
}

/// Whether values of this port type can be recorded as a metric.
pub fn is_metric_type(ty: &PortType) -> bool {
    matches!(ty, PortType::Float | PortType::Int)
}

/// Every combination of the axes' values, first axis slowest. No axes: one empty point.
pub fn grid_points(axes: &[Axis]) -> Vec<Vec<String>> {
    product(&axes.iter().map(|a| a.values.as_slice()).collect::<Vec<_>>())
}

/// The cartesian product of `lists`, first list slowest.
fn product<T: Clone>(lists: &[&[T]]) -> Vec<Vec<T>> {
    lists.iter().fold(vec![vec![]], |acc, list| {
        acc.iter()
            .flat_map(|prefix| {
                list.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push(v.clone());
                    p
                })
            })
            .collect()
    })
}

/// Why a sweep could not be set up or did not finish.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SweepError {
    /// An axis is not `NODE.PARAM=V1,V2` (or `N1.P1,N2.P2=A1:A2,B1:B2`).
    #[error("--grid `{0}`: expected NODE.PARAM=V1,V2 or N1.P1,N2.P2=A1:A2,B1:B2")]
    BadAxis(String),
    /// A linked axis' value has neither one part nor one per param.
    #[error("{axis}={value}: give one value or {params} `:`-separated values")]
    LinkedArity {
        /// The axis name.
        axis: String,
        /// The value as typed.
        value: String,
        /// How many params the axis sets.
        params: usize,
    },
    /// A metric is not `NODE.OUTPUT`.
    #[error("--metric `{0}`: expected NODE.OUTPUT")]
    BadMetric(String),
    /// An axis or metric names a node the graph lacks.
    #[error("the graph has no node `{0}`")]
    UnknownNode(String),
    /// The node's type is not registered.
    #[error("node `{node}` has unknown type `{type_id}`")]
    UnknownType {
        /// Node id.
        node: String,
        /// Its type id.
        type_id: String,
    },
    /// An axis names a param the node type lacks.
    #[error("{axis}: `{type_id}` has no such param")]
    UnknownParam {
        /// `node.param`.
        axis: String,
        /// Node type id.
        type_id: String,
    },
    /// An axis has no values.
    #[error("{0}: no values to sweep")]
    NoValues(String),
    /// A grid value does not parse as the param's kind, or is out of range.
    #[error("{axis}={value}: {problem}")]
    BadValue {
        /// `node.param`.
        axis: String,
        /// The value as typed.
        value: String,
        /// Why it was refused.
        problem: ParamProblem,
    },
    /// A metric names an output the node lacks, or one that is not a number.
    #[error("metric {metric}: {message}")]
    BadMetricPort {
        /// `node.output`.
        metric: String,
        /// What is wrong.
        message: String,
    },
    /// A grid point does not validate.
    #[error("point {point}: the graph is invalid: {}", join(errors))]
    Invalid {
        /// The point's settings, `node.param=value` separated by spaces.
        point: String,
        /// Every validation error.
        errors: Vec<ValidationError>,
    },
    /// A grid point failed to run.
    #[error("point {point}: {error}")]
    Run {
        /// The point's settings.
        point: String,
        /// The run error (boxed: it is large).
        error: Box<RunError>,
    },
    /// The sweep was cancelled.
    #[error("cancelled")]
    Cancelled,
}

fn join(errors: &[ValidationError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The measured outcome of one grid point.
#[derive(Debug, Clone, PartialEq)]
pub struct PointResult {
    /// The axes' values, as typed, in axis order.
    pub values: Vec<String>,
    /// One value per metric, in metric order.
    pub metrics: Vec<f64>,
    /// Nodes executed (not served from the cache), in order.
    pub executed: Vec<String>,
    /// Wall time of the point's run.
    pub elapsed: Duration,
}

/// Results of a sweep: column names and one row per point, in grid order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepTable {
    /// Axis names (`node.param`).
    pub axes: Vec<String>,
    /// Metric names (`node.output`).
    pub metrics: Vec<String>,
    /// One row per finished point.
    pub rows: Vec<PointResult>,
}

impl SweepTable {
    /// The values of metric `k` in row order.
    pub fn metric_column(&self, k: usize) -> Vec<f64> {
        self.rows
            .iter()
            .map(|r| r.metrics.get(k).copied().unwrap_or(f64::NAN))
            .collect()
    }

    /// CSV text: a header (axes, metrics, `executed`, `seconds`), one line per row, a final
    /// newline. Fields with a comma, quote or line break are quoted.
    pub fn to_csv(&self) -> String {
        let mut header: Vec<String> = self.axes.clone();
        header.extend(self.metrics.iter().cloned());
        header.extend(["executed".to_string(), "seconds".to_string()]);
        let mut lines = vec![csv_line(&header)];
        for r in &self.rows {
            let mut fields = r.values.clone();
            fields.extend(r.metrics.iter().map(|v| format!("{v}")));
            fields.push(r.executed.len().to_string());
            fields.push(format!("{:.3}", r.elapsed.as_secs_f64()));
            lines.push(csv_line(&fields));
        }
        lines.join("\n") + "\n"
    }
}

fn csv_line(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// How to run a sweep's points.
#[derive(Clone, Default)]
pub struct SweepOptions {
    /// Root folder; point `i` writes its files into `point_{i:03}` under it.
    pub out_dir: PathBuf,
    /// Events of every point's run.
    pub events: Option<EventSink>,
    /// Stops the sweep (between points and inside nodes that check it).
    pub cancel: CancelToken,
}

/// A sweep: a base graph, the axes to vary and the metrics to record.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The graph every point starts from.
    pub base: GraphDoc,
    /// Grid axes; the product of their values is run.
    pub axes: Vec<Axis>,
    /// Number outputs to record at each point (their nodes are the run's targets; none: every
    /// output node runs).
    pub metrics: Vec<PortRef>,
}

impl Sweep {
    /// Checks every axis value and metric against the base graph before anything runs, and
    /// returns the parsed values per axis.
    pub fn check(&self, registry: &Registry) -> Result<Vec<Vec<Vec<ParamValue>>>, SweepError> {
        for m in &self.metrics {
            let node = self
                .base
                .nodes
                .get(&m.node)
                .ok_or_else(|| SweepError::UnknownNode(m.node.clone()))?;
            let def = registry
                .get(&node.type_id)
                .ok_or_else(|| SweepError::UnknownType {
                    node: m.node.clone(),
                    type_id: node.type_id.clone(),
                })?;
            let bad = |message: String| SweepError::BadMetricPort {
                metric: m.to_string(),
                message,
            };
            let port = def
                .schema()
                .outputs
                .iter()
                .find(|p| p.name == m.port)
                .ok_or_else(|| bad(format!("`{}` has no such output", node.type_id)))?;
            if !is_metric_type(&port.ty) {
                return Err(bad(format!("not a number output ({})", port.ty)));
            }
        }
        self.axes
            .iter()
            .map(|a| a.check(&self.base, registry))
            .collect()
    }

    /// The grid points (values as typed), first axis slowest.
    pub fn points(&self) -> Vec<Vec<String>> {
        grid_points(&self.axes)
    }

    /// Runs every point with `exec` (whose cache is shared between points), calling
    /// `on_point(index, total, result)` after each. Stops at the first failure.
    pub fn run(
        &self,
        exec: &mut Executor,
        registry: &Registry,
        opts: &SweepOptions,
        mut on_point: impl FnMut(usize, usize, &PointResult),
    ) -> Result<SweepTable, SweepError> {
        let parsed = self.check(registry)?;
        let points = self.points();
        let settings = product(&parsed.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let mut table = SweepTable {
            axes: self.axes.iter().map(Axis::name).collect(),
            metrics: self.metrics.iter().map(PortRef::to_string).collect(),
            rows: Vec::with_capacity(points.len()),
        };
        for (i, (point, setting)) in points.iter().zip(&settings).enumerate() {
            if opts.cancel.is_cancelled() {
                return Err(SweepError::Cancelled);
            }
            let label = self
                .axes
                .iter()
                .zip(point)
                .map(|(a, v)| format!("{}={v}", a.name()))
                .collect::<Vec<_>>()
                .join(" ");
            let mut doc = self.base.clone();
            for (axis, values) in self.axes.iter().zip(setting) {
                for ((node, param), value) in axis.targets().into_iter().zip(values) {
                    if let Some(n) = doc.nodes.get_mut(node) {
                        n.params.insert(param.to_string(), value.clone());
                    }
                }
            }
            let graph = validate(&doc, registry).map_err(|errors| SweepError::Invalid {
                point: label.clone(),
                errors,
            })?;
            let run = RunOptions {
                targets: self.metrics.iter().map(|m| m.node.clone()).collect(),
                events: opts.events.clone(),
                cancel: opts.cancel.clone(),
                env: RunEnv {
                    out_dir: opts.out_dir.join(format!("point_{i:03}")),
                    provenance: Some(Arc::new(graph.effective_doc(&doc).to_ron())),
                },
            };
            let report = exec.run(&graph, &run).map_err(|error| {
                if error.cancelled {
                    SweepError::Cancelled
                } else {
                    SweepError::Run {
                        point: label.clone(),
                        error: Box::new(error),
                    }
                }
            })?;
            let metrics = self
                .metrics
                .iter()
                .map(|m| match report.output(&graph, &m.node, &m.port) {
                    Some(Value::Float(f)) => Ok(*f),
                    Some(Value::Int(n)) => Ok(*n as f64),
                    other => Err(SweepError::BadMetricPort {
                        metric: m.to_string(),
                        message: format!("not a number output ({other:?})"),
                    }),
                })
                .collect::<Result<Vec<f64>, _>>()?;
            let row = PointResult {
                values: point.clone(),
                metrics,
                executed: report.executed,
                elapsed: report.total,
            };
            on_point(i, points.len(), &row);
            table.rows.push(row);
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::document::{Edge, NodeDoc};
    use crate::exec_ctx::{ExecCtx, NodeError};
    use crate::params::ParamSpec;
    use crate::registry::{Node, NodeSchema, PortSpec};

    /// `test.const`: outputs its `value` param; `test.add`: `a + b` (param `b`).
    struct Scalar(NodeSchema);

    impl Node for Scalar {
        fn schema(&self) -> &NodeSchema {
            &self.0
        }
        fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
            let own = match &self.0.params[0].name[..] {
                "value" => ctx.float("value")?,
                _ => ctx.float("b")?,
            };
            let a = match ctx.opt_input("a") {
                Some(v) => v.as_float().map_err(|e| NodeError::msg(e.to_string()))?,
                None => 0.0,
            };
            Ok(vec![Value::Float(a + own)])
        }
    }

    fn registry() -> Registry {
        let schema = |id: &str, inputs: Vec<PortSpec>, param: &str| NodeSchema {
            id: id.into(),
            version: 1,
            category: "test".into(),
            description: String::new(),
            inputs,
            outputs: vec![PortSpec::new("value", PortType::Float, "")],
            params: vec![ParamSpec::float(param, 0.0, -100.0, 100.0, "")],
            output_node: false,
        };
        Registry::from_nodes(vec![
            Box::new(Scalar(schema("test.const", vec![], "value"))) as Box<dyn Node>,
            Box::new(Scalar(schema(
                "test.add",
                vec![PortSpec::new("a", PortType::Float, "")],
                "b",
            ))),
        ])
    }

    /// `x` (test.const) → `sum` (test.add).
    fn graph() -> GraphDoc {
        let node = |t: &str| NodeDoc {
            type_id: t.into(),
            version: 1,
            params: BTreeMap::new(),
        };
        GraphDoc {
            nodes: [
                ("x".into(), node("test.const")),
                ("sum".into(), node("test.add")),
            ]
            .into(),
            edges: vec!["x.value -> sum.a".parse::<Edge>().unwrap()],
            ..GraphDoc::default()
        }
    }

    fn axis(spec: &str) -> Axis {
        Axis::parse(spec).unwrap()
    }

    #[test]
    fn axes_parse_and_expand_first_axis_slowest() {
        let a = axis("x.value=1,2");
        assert_eq!((a.node.as_str(), a.param.as_str()), ("x", "value"));
        assert_eq!(a.name(), "x.value");
        let points = grid_points(&[a, axis("sum.b=10,20,30")]);
        let as_str: Vec<String> = points.iter().map(|p| p.join(" ")).collect();
        assert_eq!(
            as_str,
            ["1 10", "1 20", "1 30", "2 10", "2 20", "2 30"].map(String::from)
        );
        assert_eq!(grid_points(&[]), vec![Vec::<String>::new()]);
        assert!(matches!(
            Axis::parse("x.value"),
            Err(SweepError::BadAxis(_))
        ));
        assert!(matches!(Axis::parse("x=1,2"), Err(SweepError::BadAxis(_))));
        assert!(matches!(parse_metric("sum"), Err(SweepError::BadMetric(_))));
        assert_eq!(
            parse_metric("sum.value").unwrap(),
            PortRef::new("sum", "value")
        );
    }

    #[test]
    fn values_and_metrics_are_checked_before_running() {
        let reg = registry();
        let sweep = |axes: &[&str], metrics: &[&str]| Sweep {
            base: graph(),
            axes: axes.iter().map(|a| axis(a)).collect(),
            metrics: metrics.iter().map(|m| parse_metric(m).unwrap()).collect(),
        };
        let parsed = sweep(&["x.value=1,2.5"], &["sum.value"])
            .check(&reg)
            .unwrap();
        assert_eq!(
            parsed,
            vec![vec![
                vec![ParamValue::Float(1.0)],
                vec![ParamValue::Float(2.5)]
            ]]
        );
        let err = |s: Sweep| s.check(&reg).unwrap_err();
        assert!(matches!(
            err(sweep(&["x.value=1,abc"], &[])),
            SweepError::BadValue { value, .. } if value == "abc"
        ));
        assert!(matches!(
            err(sweep(&["x.value=1,500"], &[])),
            SweepError::BadValue {
                problem: ParamProblem::OutOfRange { .. },
                ..
            }
        ));
        assert!(matches!(err(sweep(&["y.value=1"], &[])), SweepError::UnknownNode(n) if n == "y"));
        assert!(matches!(
            err(sweep(&["x.nope=1"], &[])),
            SweepError::UnknownParam { .. }
        ));
        assert!(matches!(
            err(sweep(&[], &["sum.nope"])),
            SweepError::BadMetricPort { .. }
        ));
    }

    #[test]
    fn a_linked_axis_sets_its_params_together() {
        let reg = registry();
        let linked = axis("x.value,sum.b=1:10,2");
        assert_eq!(linked.name(), "x.value+sum.b");
        assert_eq!(linked.targets(), vec![("x", "value"), ("sum", "b")]);
        let sweep = Sweep {
            base: graph(),
            axes: vec![linked],
            metrics: vec![parse_metric("sum.value").unwrap()],
        };
        // Point 0: x = 1, b = 10; point 1: both 2 (one value for every param).
        let table = sweep
            .run(
                &mut Executor::default(),
                &reg,
                &SweepOptions::default(),
                |_, _, _| {},
            )
            .unwrap();
        let sums: Vec<f64> = table.rows.iter().map(|r| r.metrics[0]).collect();
        assert_eq!(sums, vec![11.0, 4.0]);
        assert_eq!(table.axes, vec!["x.value+sum.b".to_string()]);
        let bad = Sweep {
            axes: vec![axis("x.value,sum.b=1:2:3")],
            ..sweep
        };
        assert!(matches!(
            bad.check(&reg).unwrap_err(),
            SweepError::LinkedArity { params: 2, .. }
        ));
        assert!(Axis::parse("x.value,=1").is_err());
    }

    #[test]
    fn run_shares_the_cache_and_collects_metrics() {
        let reg = registry();
        let sweep = Sweep {
            base: graph(),
            axes: vec![axis("x.value=1,2"), axis("sum.b=10,20")],
            metrics: vec![parse_metric("sum.value").unwrap()],
        };
        let mut exec = Executor::default();
        let mut seen = Vec::new();
        let table = sweep
            .run(&mut exec, &reg, &SweepOptions::default(), |i, n, r| {
                seen.push((i, n, r.metrics[0]))
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![(0, 4, 11.0), (1, 4, 21.0), (2, 4, 12.0), (3, 4, 22.0)]
        );
        assert_eq!(table.axes, ["x.value", "sum.b"]);
        assert_eq!(table.metrics, ["sum.value"]);
        assert_eq!(table.metric_column(0), [11.0, 21.0, 12.0, 22.0]);
        // `x` runs once per value of its own axis; the second `sum.b` reuses it.
        let executed: Vec<Vec<&str>> = table
            .rows
            .iter()
            .map(|r| r.executed.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            executed,
            [vec!["x", "sum"], vec!["sum"], vec!["x", "sum"], vec!["sum"]]
        );

        // A point that does not validate names the point and the problem.
        let mut base = graph();
        base.edges.clear();
        let broken = Sweep {
            base,
            ..sweep.clone()
        };
        let err = broken
            .run(&mut exec, &reg, &SweepOptions::default(), |_, _, _| {})
            .unwrap_err();
        assert!(matches!(&err, SweepError::Invalid { point, .. } if point == "x.value=1 sum.b=10"));
        assert!(err.to_string().contains("sum.a"), "{err}");

        let cancel = CancelToken::new();
        cancel.cancel();
        let opts = SweepOptions {
            cancel,
            ..SweepOptions::default()
        };
        assert!(matches!(
            sweep.run(&mut exec, &reg, &opts, |_, _, _| {}),
            Err(SweepError::Cancelled)
        ));
    }

    #[test]
    fn csv_has_header_rows_and_quotes_only_when_needed() {
        let row = |v: &str, m: f64, n: usize, ms: u64| PointResult {
            values: vec![v.to_string(), "2".into()],
            metrics: vec![m],
            executed: vec!["n".into(); n],
            elapsed: Duration::from_millis(ms),
        };
        let table = SweepTable {
            axes: vec!["a.mode".into(), "b.seed".into()],
            metrics: vec!["m.psnr".into()],
            rows: vec![
                row("dual", 31.5, 3, 1234),
                row("say \"hi\", then", 0.25, 1, 5),
            ],
        };
        assert_eq!(
            table.to_csv(),
            "a.mode,b.seed,m.psnr,executed,seconds\n\
             dual,2,31.5,3,1.234\n\
             \"say \"\"hi\"\", then\",2,0.25,1,0.005\n"
        );
        assert_eq!(SweepTable::default().to_csv(), "executed,seconds\n");
    }
}
