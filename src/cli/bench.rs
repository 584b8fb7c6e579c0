//! `unilip bench ...`: benchmarks that print figures.

use std::collections::BTreeMap;
use std::time::Instant;

use clap::Subcommand;
use unilip_core::{
    validate, CancelToken, Edge, ExecCtx, Executor, GraphDoc, NodeDoc, ParamValue, PortRef,
    Registry, RunEnv, RunOptions, Value,
};

use unilip_nodes::backend::DeviceKind;

use super::CliError;

/// Whether benchmarks run on the GPU (the backend of `--features cuda` builds).
pub(super) const ON_GPU: bool = matches!(DeviceKind::native(), DeviceKind::Cuda);

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// One real-size block of each UniLIP-1B component on this machine (ms, GFLOP/s, % of peak).
    Models {
        /// Timed runs per block.
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// A Python interpreter with torch, transformers and diffusers: also time each block in
        /// PyTorch eager and print the Burn/PyTorch time ratio.
        #[arg(long, value_name = "PYTHON")]
        torch: Option<std::path::PathBuf>,
    },
    /// Training steps per second of the recipe's generation stage on the embedded model: the
    /// batch as one micro-batch, then split into `--workers` micro-batches on 1 and on
    /// `--workers` threads (`train.run`'s `grad_accum` and `workers`).
    Train {
        /// Timed optimizer steps per configuration (after one untimed step).
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Samples per optimizer step.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Micro-batches and threads of the parallel configuration.
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
    /// Executor overhead on a chain of cheap nodes, and a fully cached re-run.
    Executor {
        /// Chain length.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
    },
}

/// Dispatches `unilip bench ...`.
pub fn bench_cmd(cmd: BenchCommand) -> Result<(), CliError> {
    match cmd {
        BenchCommand::Executor { nodes } => bench_executor(nodes),
        BenchCommand::Train {
            steps,
            batch,
            workers,
        } => super::bench_train::bench_train(steps.max(1), batch, workers),
        BenchCommand::Models { reps, torch } => {
            super::bench_models::bench_models(reps.max(1), torch.as_deref())
        }
    }
}

fn chain(n: usize) -> GraphDoc {
    let mut doc = GraphDoc::default();
    let node = |t: &str, params: BTreeMap<String, ParamValue>| NodeDoc {
        type_id: t.into(),
        version: 1,
        params,
    };
    doc.nodes.insert(
        "n0".into(),
        node(
            "scalar.float",
            [("value".into(), ParamValue::Float(1.0))].into(),
        ),
    );
    for i in 1..n {
        doc.nodes.insert(
            format!("n{i}"),
            node(
                "scalar.math",
                [("b".into(), ParamValue::Float(1e-3))].into(),
            ),
        );
        doc.edges.push(Edge {
            from: PortRef::new(&format!("n{}", i - 1), "value"),
            to: PortRef::new(&format!("n{i}"), "a"),
        });
    }
    doc
}

fn bench_executor(n: usize) -> Result<(), CliError> {
    let n = n.max(2);
    let doc = chain(n);
    let graph = validate(&doc, Registry::global()).map_err(CliError::Invalid)?;
    let target = format!("n{}", n - 1);

    // Direct calls of the same node functions.
    let reg = Registry::global();
    let (first, rest) = (
        reg.get("scalar.float").expect("registered"),
        reg.get("scalar.math").expect("registered"),
    );
    let cancel = CancelToken::new();
    let env = RunEnv::default();
    let params_first = &graph.nodes["n0"].params;
    let params_rest = &graph.nodes["n1"].params;
    let t0 = Instant::now();
    let mut v = first
        .execute(&mut ExecCtx::detached(
            "n0",
            params_first,
            BTreeMap::new(),
            &cancel,
            &env,
        ))
        .map_err(|e| CliError::Run(e.to_string()))?;
    for _ in 1..n {
        let inputs = [("a".to_string(), v.remove(0))].into();
        v = rest
            .execute(&mut ExecCtx::detached(
                "n",
                params_rest,
                inputs,
                &cancel,
                &env,
            ))
            .map_err(|e| CliError::Run(e.to_string()))?;
    }
    let direct = t0.elapsed();
    let direct_value = v[0].clone();

    let mut exec = Executor::default();
    let opts = RunOptions {
        targets: vec![target.clone()],
        ..Default::default()
    };
    let t1 = Instant::now();
    let report = exec
        .run(&graph, &opts)
        .map_err(|e| CliError::Run(e.to_string()))?;
    let full = t1.elapsed();
    let t2 = Instant::now();
    let cached = exec
        .run(&graph, &opts)
        .map_err(|e| CliError::Run(e.to_string()))?;
    let rerun = t2.elapsed();
    let got = report.outputs[&target][0].clone();
    if let (Value::Float(a), Value::Float(b)) = (&got, &direct_value) {
        if (a - b).abs() > 1e-9 {
            return Err(CliError::Run(format!(
                "executor ({a}) and direct calls ({b}) disagree"
            )));
        }
    }
    println!("executor benchmark: chain of {n} scalar.math nodes");
    println!(
        "  direct node calls     {:>10.3} ms",
        direct.as_secs_f64() * 1e3
    );
    println!(
        "  executor, cold cache  {:>10.3} ms  ({:.2} µs overhead per node)",
        full.as_secs_f64() * 1e3,
        (full.as_secs_f64() - direct.as_secs_f64()) * 1e6 / n as f64
    );
    println!(
        "  executor, all cached  {:>10.3} ms  ({} executed, {} cached)",
        rerun.as_secs_f64() * 1e3,
        cached.executed.len(),
        cached.cached.len()
    );
    Ok(())
}
