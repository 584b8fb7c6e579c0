//! Run bookkeeping on the UI side: the job queue, per-node states, the latest outputs with
//! their thumbnails and the current sweep's results, fed by [`WorkerMsg`]s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use egui::{TextureHandle, TextureOptions};
use unilip_core::{CancelToken, Event, ImageBatch, Registry, Sweep, SweepTable, Value};

use crate::document::Document;
use crate::images::color_image;
use crate::worker::{Job, NodeValues, SweepJob, Worker, WorkerMsg};

/// Longest side of an on-node thumbnail, in pixels.
const THUMB_SIZE: usize = 256;

/// State of one node in the latest run.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeState {
    /// Waiting for its turn.
    Queued,
    /// Executing; `step/total` when the node reports progress.
    Running {
        /// Steps done.
        step: u64,
        /// Steps in all (0 = unknown).
        total: u64,
    },
    /// Served from the cache.
    Cached,
    /// Computed in this time.
    Done(Duration),
    /// Failed with this message.
    Failed(String),
}

/// Status of a queued run.
#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    /// Waiting for the worker.
    Queued,
    /// Running.
    Running,
    /// Finished in this time.
    Done(Duration),
    /// Failed.
    Failed(String),
    /// Cancelled.
    Cancelled,
}

/// One entry of the run queue.
pub struct JobRecord {
    /// Job number.
    pub id: u64,
    /// What was asked ("all" or "up to NODE").
    pub label: String,
    /// Status.
    pub status: JobStatus,
    cancel: CancelToken,
}

/// The latest sweep: its results so far and its status.
pub struct SweepRun {
    /// Job number.
    pub id: u64,
    /// Column names and the rows of the points finished so far.
    pub table: SweepTable,
    /// Number of points in the grid.
    pub total: usize,
    /// Status.
    pub status: JobStatus,
    cancel: CancelToken,
}

impl SweepRun {
    /// Whether the sweep is queued or running.
    pub fn busy(&self) -> bool {
        matches!(self.status, JobStatus::Queued | JobStatus::Running)
    }
}

/// An output value shown in the editor, with a texture for images.
pub struct ShownValue {
    /// Output port name.
    pub port: String,
    /// The value.
    pub value: Value,
    /// Thumbnail of the first image of an image batch.
    pub texture: Option<TextureHandle>,
}

/// Run state of the editor.
pub struct RunState {
    worker: Worker,
    next_id: u64,
    /// Queued, running and finished runs, oldest first.
    pub jobs: Vec<JobRecord>,
    /// Per-node state of the most recent run.
    pub states: BTreeMap<String, NodeState>,
    /// Latest outputs per node (kept until the node runs again).
    pub outputs: BTreeMap<String, Vec<ShownValue>>,
    /// Latest progress preview per node (e.g. a latent decoded cheaply during sampling).
    pub previews: BTreeMap<String, TextureHandle>,
    /// Directory for files written by output nodes (sweeps write under `sweep/` in it).
    pub out_dir: PathBuf,
    /// The latest sweep, if any.
    pub sweep: Option<SweepRun>,
    /// Wall time of the run whose executor has finished but whose outputs have not arrived yet.
    finished_in: Option<Duration>,
}

impl RunState {
    /// Starts the worker; it asks `ctx` to repaint whenever it has news.
    pub fn new(ctx: &egui::Context) -> Self {
        let ctx = ctx.clone();
        Self {
            worker: Worker::spawn(Arc::new(move || ctx.request_repaint())),
            next_id: 1,
            jobs: Vec::new(),
            states: BTreeMap::new(),
            outputs: BTreeMap::new(),
            previews: BTreeMap::new(),
            out_dir: PathBuf::from("out"),
            sweep: None,
            finished_in: None,
        }
    }

    /// Validates and queues a run of the document (`target`: only what that node needs).
    /// Validation errors are already shown on the nodes; this returns a one-line summary.
    pub fn submit(&mut self, doc: &Document, target: Option<&str>) -> Result<u64, String> {
        let graph = doc
            .validated()
            .map_err(|e| format!("the graph has {} validation error(s)", e.len()))?;
        let provenance = graph.effective_doc(doc.doc()).to_ron();
        let id = self.next_id;
        self.next_id += 1;
        let cancel = CancelToken::new();
        let job = Job {
            id,
            graph,
            targets: target.map(|t| vec![t.to_string()]).unwrap_or_default(),
            out_dir: self.out_dir.clone(),
            provenance,
            cancel: cancel.clone(),
        };
        if !self.worker.submit(job) {
            return Err("the run worker is not running".into());
        }
        self.jobs.push(JobRecord {
            id,
            label: target.map_or("all".into(), |t| format!("up to {t}")),
            status: JobStatus::Queued,
            cancel,
        });
        Ok(id)
    }

    /// Checks `sweep` and queues it on the worker (after any queued runs). Refused while
    /// another sweep is queued or running.
    pub fn submit_sweep(&mut self, sweep: Sweep) -> Result<u64, String> {
        if self.sweep.as_ref().is_some_and(SweepRun::busy) {
            return Err("a sweep is already running".into());
        }
        sweep.check(Registry::global()).map_err(|e| e.to_string())?;
        let id = self.next_id;
        self.next_id += 1;
        let cancel = CancelToken::new();
        let table = SweepTable {
            axes: sweep.axes.iter().map(|a| a.name()).collect(),
            metrics: sweep.metrics.iter().map(|m| m.to_string()).collect(),
            rows: Vec::new(),
        };
        let total = sweep.points().len();
        let job = SweepJob {
            id,
            sweep,
            out_dir: self.out_dir.join("sweep"),
            cancel: cancel.clone(),
        };
        if !self.worker.submit_sweep(job) {
            return Err("the run worker is not running".into());
        }
        self.sweep = Some(SweepRun {
            id,
            table,
            total,
            status: JobStatus::Queued,
            cancel,
        });
        Ok(id)
    }

    /// Cancels the current sweep, if it is queued or running.
    pub fn cancel_sweep(&mut self) {
        if let Some(s) = self.sweep.as_ref().filter(|s| s.busy()) {
            s.cancel.cancel();
        }
    }

    /// Cancels the running job, every queued one and the sweep.
    pub fn cancel_all(&mut self) {
        for j in &mut self.jobs {
            if matches!(j.status, JobStatus::Queued | JobStatus::Running) {
                j.cancel.cancel();
            }
        }
        self.cancel_sweep();
    }

    /// Whether a run or a sweep is queued or running.
    pub fn busy(&self) -> bool {
        self.jobs
            .iter()
            .any(|j| matches!(j.status, JobStatus::Queued | JobStatus::Running))
            || self.sweep.as_ref().is_some_and(SweepRun::busy)
    }

    /// Drains worker messages into the state; creates textures for new images.
    pub fn poll(&mut self, ctx: &egui::Context) {
        while let Some(msg) = self.worker.try_recv() {
            match msg {
                WorkerMsg::Started(id) => self.set_status(id, JobStatus::Running),
                WorkerMsg::Event(_, e) => self.on_event(ctx, e),
                WorkerMsg::Finished { job, result } => match result {
                    Ok(outputs) => {
                        // Done only now that the outputs are in (the executor's end comes first).
                        let elapsed = self.finished_in.take().unwrap_or_default();
                        self.on_outputs(ctx, outputs);
                        self.set_status(job, JobStatus::Done(elapsed));
                    }
                    Err((msg, cancelled)) => {
                        self.finished_in = None;
                        let status = if cancelled {
                            JobStatus::Cancelled
                        } else {
                            JobStatus::Failed(msg)
                        };
                        self.set_status(job, status);
                        if cancelled {
                            self.mark_cancelled_nodes();
                        }
                    }
                },
                WorkerMsg::SweepPoint { job, total, point } => {
                    if let Some(s) = self.sweep.as_mut().filter(|s| s.id == job) {
                        s.total = total;
                        s.table.rows.push(point);
                    }
                }
                WorkerMsg::SweepFinished { job, result } => {
                    let status = match result {
                        Ok(()) => JobStatus::Done(
                            self.sweep
                                .iter()
                                .flat_map(|s| &s.table.rows)
                                .map(|r| r.elapsed)
                                .sum(),
                        ),
                        Err((_, true)) => JobStatus::Cancelled,
                        Err((msg, false)) => JobStatus::Failed(msg),
                    };
                    if status == JobStatus::Cancelled {
                        self.mark_cancelled_nodes();
                    }
                    self.set_status(job, status);
                }
            }
        }
    }

    /// Sets the status of run or sweep `id`.
    fn set_status(&mut self, id: u64, status: JobStatus) {
        if let Some(j) = self.jobs.iter_mut().find(|j| j.id == id) {
            j.status = status;
        } else if let Some(s) = self.sweep.as_mut().filter(|s| s.id == id) {
            s.status = status;
        }
    }

    fn mark_cancelled_nodes(&mut self) {
        for s in self.states.values_mut() {
            if matches!(s, NodeState::Queued | NodeState::Running { .. }) {
                *s = NodeState::Failed("cancelled".into());
            }
        }
    }

    fn on_event(&mut self, ctx: &egui::Context, e: Event) {
        match e {
            Event::RunStarted { to_execute, cached } => {
                self.states.clear();
                self.previews.clear();
                for id in to_execute {
                    self.states.insert(id, NodeState::Queued);
                }
                for id in cached {
                    self.states.insert(id, NodeState::Cached);
                }
            }
            Event::NodeStarted { node } => {
                self.states
                    .insert(node, NodeState::Running { step: 0, total: 0 });
            }
            Event::NodeProgress {
                node,
                step,
                total,
                preview,
            } => {
                if let Some(Value::Image(img)) = &preview {
                    let tex = thumbnail(ctx, &format!("preview-{node}"), img);
                    self.previews.insert(node.clone(), tex);
                }
                self.states.insert(node, NodeState::Running { step, total });
            }
            Event::NodeFinished { node, elapsed } => {
                self.states.insert(node, NodeState::Done(elapsed));
            }
            Event::NodeFailed { node, message } => {
                self.states.insert(node, NodeState::Failed(message));
            }
            Event::Warning { .. } => {}
            Event::RunFinished { elapsed } => {
                // The job ends when its result arrives, right after: outputs or a failure.
                self.finished_in = Some(elapsed);
            }
        }
    }

    fn on_outputs(&mut self, ctx: &egui::Context, outputs: Vec<(String, NodeValues)>) {
        for (node, values) in outputs {
            let shown = values
                .into_iter()
                .map(|(port, value)| {
                    let texture = match &value {
                        Value::Image(img) => {
                            Some(thumbnail(ctx, &format!("out-{node}.{port}"), img))
                        }
                        _ => None,
                    };
                    ShownValue {
                        port,
                        value,
                        texture,
                    }
                })
                .collect();
            self.outputs.insert(node, shown);
        }
    }
}

impl Drop for RunState {
    fn drop(&mut self) {
        self.cancel_all();
    }
}

/// Uploads the first image of a batch, downscaled to at most [`THUMB_SIZE`] pixels a side.
fn thumbnail(ctx: &egui::Context, name: &str, img: &ImageBatch) -> TextureHandle {
    ctx.load_texture(
        name,
        color_image(img, 0, THUMB_SIZE),
        TextureOptions::LINEAR,
    )
}
