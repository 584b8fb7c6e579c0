//! `unilip bench train`: optimizer steps per second of the recipe's generation stage on the
//! embedded default model, for a few ways to split the batch (micro-batches, worker threads).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use unilip_core::{Event, EventSink, Executor, GraphDoc, RunEnv, RunOptions};

use super::run::{apply_sets, validated};
use super::CliError;

/// The recipe's generation stage (dual condition, flow matching on ShapesWorld captions).
const GRAPH: &str = include_str!("../../graphs/recipe/shapes_4_generate.ron");

/// One configuration: samples per micro-batch, micro-batches per step, worker threads.
#[derive(Clone, Copy, Debug)]
struct Split {
    batch_size: usize,
    grad_accum: usize,
    workers: usize,
}

/// Times `steps` optimizer steps (after one warm-up step) of each split of `batch` samples per
/// step: one micro-batch, then `workers` micro-batches on 1 and on `workers` threads.
pub fn bench_train(steps: usize, batch: usize, workers: usize) -> Result<(), CliError> {
    let workers = workers.max(2);
    if batch < workers || !batch.is_multiple_of(workers) {
        return Err(CliError::Usage(format!(
            "--batch {batch} must be a multiple of --workers {workers}"
        )));
    }
    let micro = batch / workers;
    let splits = [
        Split {
            batch_size: batch,
            grad_accum: 1,
            workers: 1,
        },
        Split {
            batch_size: micro,
            grad_accum: workers,
            workers: 1,
        },
        Split {
            batch_size: micro,
            grad_accum: workers,
            workers,
        },
    ];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let device = if super::bench::ON_GPU {
        format!("CUDA device 0, {cores} CPU cores")
    } else {
        format!("{cores} CPU cores")
    };
    println!(
        "training benchmark: graphs/recipe/shapes_4_generate.ron on the embedded model, {batch} \
         samples per step, {steps} timed steps, {device}"
    );
    println!("  micro-batch × micro-batches  workers   s/step   samples/s");
    let mut baseline = None;
    for split in splits {
        let per_step = time_steps(split, steps)?;
        let speedup = baseline.get_or_insert(per_step);
        println!(
            "  {:>11} × {:<12} {:>7} {:>8.3} {:>11.1}   ({:.2}× the first row)",
            split.batch_size,
            split.grad_accum,
            split.workers,
            per_step,
            batch as f64 / per_step,
            *speedup / per_step
        );
    }
    Ok(())
}

/// Seconds per optimizer step, from the trainer's progress events (setup excluded).
fn time_steps(split: Split, steps: usize) -> Result<f64, CliError> {
    let out = std::env::temp_dir().join(format!(
        "unilip-bench-train-{}-{}x{}x{}",
        std::process::id(),
        split.batch_size,
        split.grad_accum,
        split.workers
    ));
    let mut doc = GraphDoc::from_ron(GRAPH, "graphs/recipe/shapes_4_generate.ron")
        .map_err(|e| CliError::Run(e.to_string()))?;
    apply_sets(
        &mut doc,
        &[
            "ckpt.dir=".into(),
            format!("train.out={}", out.display()),
            format!("train.steps={}", steps + 1),
            format!("train.save_every={}", steps + 1),
            "train.resume=false".into(),
            format!("train.batch_size={}", split.batch_size),
            format!("train.grad_accum={}", split.grad_accum),
            format!("train.workers={}", split.workers),
        ],
    )?;
    let graph = validated(&doc)?;
    // Instants of the first and the last progress event of the trainer.
    let marks: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let sink_marks = marks.clone();
    let sink: EventSink = Arc::new(move |e: &Event| {
        if matches!(e, Event::NodeProgress { node, .. } if node == "train") {
            sink_marks.lock().expect("marks lock").push(Instant::now());
        }
    });
    let opts = RunOptions {
        targets: vec!["train".into()],
        events: Some(sink),
        env: RunEnv {
            out_dir: out.clone(),
            provenance: None,
        },
        ..Default::default()
    };
    let result = Executor::default().run(&graph, &opts);
    let _ = std::fs::remove_dir_all(&out);
    result.map_err(|e| CliError::Run(e.to_string()))?;
    let marks = marks.lock().expect("marks lock");
    match (marks.first(), marks.last()) {
        (Some(first), Some(last)) if marks.len() > 1 => {
            Ok(last.duration_since(*first).as_secs_f64() / (marks.len() - 1) as f64)
        }
        _ => Err(CliError::Run(
            "the trainer reported no progress to time".into(),
        )),
    }
}
