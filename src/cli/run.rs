//! `unilip run` and `unilip validate`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use unilip_core::{
    validate, CancelToken, Event, EventSink, Executor, GraphDoc, Registry, RunEnv, RunOptions,
    ValidatedGraph,
};

use super::CliError;

/// Arguments of `unilip run`.
#[derive(Args)]
pub struct RunArgs {
    /// Graph file: `.ron`, or a PNG written by Save Image (its embedded graph is re-run).
    graph: PathBuf,
    /// Override a param: `NODE.PARAM=VALUE` (repeatable).
    #[arg(long = "set", value_name = "NODE.PARAM=VALUE")]
    sets: Vec<String>,
    /// Only compute what these nodes need (repeatable); default: every output node.
    #[arg(long = "output", value_name = "NODE")]
    outputs: Vec<String>,
    /// Directory for files written by output nodes.
    #[arg(long, default_value = "out")]
    out: PathBuf,
}

/// Loads a graph from `.ron` or from a PNG's embedded graph, and runs migrations.
pub fn load_graph(path: &Path) -> Result<GraphDoc, CliError> {
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let mut doc = if is_png {
        let text = unilip_nodes::nodes::png_meta::read_graph(path)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        GraphDoc::from_ron(&text, &path.display().to_string())
    } else {
        GraphDoc::load(path)
    }
    .map_err(|e| CliError::Usage(e.to_string()))?;
    for note in doc.migrate(Registry::global()) {
        eprintln!("note: {}: {}", note.node, note.message);
    }
    Ok(doc)
}

/// Applies `--set NODE.PARAM=VALUE` overrides, parsing each value by the param's declared kind.
pub fn apply_sets(doc: &mut GraphDoc, sets: &[String]) -> Result<(), CliError> {
    for s in sets {
        let (lhs, value) = s
            .split_once('=')
            .ok_or_else(|| CliError::Usage(format!("--set `{s}`: expected NODE.PARAM=VALUE")))?;
        let (node, param) = lhs
            .split_once('.')
            .ok_or_else(|| CliError::Usage(format!("--set `{s}`: expected NODE.PARAM=VALUE")))?;
        let nd = doc.nodes.get_mut(node).ok_or_else(|| {
            CliError::Usage(format!("--set `{s}`: the graph has no node `{node}`"))
        })?;
        let def = Registry::global().get(&nd.type_id).ok_or_else(|| {
            CliError::Usage(format!(
                "--set `{s}`: node `{node}` has unknown type `{}`",
                nd.type_id
            ))
        })?;
        let spec = def.schema().param(param).ok_or_else(|| {
            CliError::Usage(format!(
                "--set `{s}`: `{}` has no param `{param}`",
                nd.type_id
            ))
        })?;
        let v = spec
            .parse(value)
            .map_err(|p| CliError::Usage(format!("--set `{s}`: {p}")))?;
        nd.params.insert(param.to_string(), v);
    }
    Ok(())
}

/// Validates against the global registry.
pub fn validated(doc: &GraphDoc) -> Result<ValidatedGraph, CliError> {
    validate(doc, Registry::global()).map_err(CliError::Invalid)
}

/// `unilip validate GRAPH`.
pub fn validate_cmd(path: &Path) -> Result<(), CliError> {
    let doc = load_graph(path)?;
    let graph = validated(&doc)?;
    println!(
        "{}: valid ({} nodes, {} edges)",
        path.display(),
        graph.nodes.len(),
        doc.edges.len()
    );
    Ok(())
}

/// An event sink that drives an indicatif progress bar.
fn progress_sink() -> (EventSink, ProgressBar) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_msg} {pos}/{len} ETA {eta}",
        )
        .expect("valid template"),
    );
    // (bar, nodes to run, nodes done): the bar counts nodes, or the steps of a node that reports
    // progress (sampling, training) while it runs, so its ETA is the node's.
    let shared = Arc::new(Mutex::new((bar.clone(), 0u64, 0u64)));
    let sink: EventSink = Arc::new(move |e: &Event| {
        let mut state = shared.lock().expect("progress lock");
        let (bar, nodes, done) = &mut *state;
        match e {
            Event::RunStarted { to_execute, cached } => {
                *nodes = to_execute.len() as u64;
                bar.set_length(*nodes);
                if !cached.is_empty() {
                    bar.println(format!("cached: {}", cached.join(", ")));
                }
            }
            Event::NodeStarted { node } => bar.set_message(node.clone()),
            Event::NodeProgress {
                node, step, total, ..
            } => {
                if *step <= 1 {
                    bar.reset_eta();
                }
                bar.set_length(*total);
                bar.set_position(*step);
                bar.set_message(format!("{node} step"));
            }
            Event::NodeFinished { node, elapsed } => {
                *done += 1;
                bar.set_length(*nodes);
                bar.set_position(*done);
                bar.println(format!("done   {node} ({:.2?})", elapsed));
            }
            Event::Warning { node, message } => bar.println(format!("warning: {node}: {message}")),
            Event::NodeFailed { node, message } => bar.println(format!("failed {node}: {message}")),
            Event::RunFinished { .. } => bar.finish_and_clear(),
        }
    });
    (sink, bar)
}

/// `unilip run GRAPH`.
pub fn run(args: RunArgs) -> Result<(), CliError> {
    let mut doc = load_graph(&args.graph)?;
    apply_sets(&mut doc, &args.sets)?;
    run_doc(&doc, &args.outputs, &args.out)
}

/// `unilip train GRAPH [--resume]`: a run of a graph with at least one `train.run` node; with
/// `--resume` every trainer continues from its newest checkpoint.
pub fn train(args: RunArgs, resume: bool) -> Result<(), CliError> {
    let mut doc = load_graph(&args.graph)?;
    apply_sets(&mut doc, &args.sets)?;
    let trainers: Vec<String> = doc
        .nodes
        .iter()
        .filter(|(_, n)| n.type_id == "train.run")
        .map(|(id, _)| id.clone())
        .collect();
    if trainers.is_empty() {
        return Err(CliError::Usage(format!(
            "{} has no `train.run` node (use `unilip run` for inference graphs)",
            args.graph.display()
        )));
    }
    if resume {
        for id in &trainers {
            if let Some(n) = doc.nodes.get_mut(id) {
                n.params
                    .insert("resume".into(), unilip_core::ParamValue::Bool(true));
            }
        }
    }
    run_doc(&doc, &args.outputs, &args.out)
}

/// Validates and runs `doc`, computing `targets` (default: every output node), with files under
/// `out`; prints the output values.
pub fn run_doc(doc: &GraphDoc, targets: &[String], out: &Path) -> Result<(), CliError> {
    let graph = validated(doc)?;
    let provenance = graph.effective_doc(doc).to_ron();
    let (sink, _bar) = progress_sink();
    let opts = RunOptions {
        targets: targets.to_vec(),
        events: Some(sink),
        cancel: CancelToken::new(),
        env: RunEnv {
            out_dir: out.to_path_buf(),
            provenance: Some(Arc::new(provenance)),
        },
    };
    let mut exec = Executor::default();
    let report = exec.run(&graph, &opts).map_err(|e| {
        let mut m = e.to_string();
        for (port, desc) in &e.inputs {
            m.push_str(&format!("\n  input {port}: {desc}"));
        }
        CliError::Run(m)
    })?;
    let shown: Vec<&String> = if targets.is_empty() {
        report
            .outputs
            .keys()
            .filter(|id| graph.nodes[*id].def.schema().output_node)
            .collect()
    } else {
        targets.iter().collect()
    };
    for id in shown {
        let schema = graph.nodes[id].def.schema();
        for (port, value) in schema.outputs.iter().zip(report.outputs[id].iter()) {
            println!("{id}.{}: {}", port.name, value.describe());
        }
    }
    println!(
        "ran {} node(s), {} cached, in {:.2?}",
        report.executed.len(),
        report.cached.len(),
        report.total
    );
    Ok(())
}
