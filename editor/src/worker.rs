//! The run worker: one thread that owns the [`Executor`] (so its cache survives between runs
//! and is shared by the points of a sweep) and runs queued jobs one after the other, streaming
//! core [`Event`]s and sweep points back over a channel.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use unilip_core::{
    CancelToken, Event, EventSink, Executor, PointResult, Registry, RunEnv, RunOptions, Sweep,
    SweepError, SweepOptions, ValidatedGraph, Value,
};

/// One run request.
pub struct Job {
    /// Job number, unique within the editor session.
    pub id: u64,
    /// The validated graph to run.
    pub graph: ValidatedGraph,
    /// Nodes to compute (empty: every output node).
    pub targets: Vec<String>,
    /// Directory for files written by output nodes.
    pub out_dir: PathBuf,
    /// Graph text embedded into saved images.
    pub provenance: String,
    /// Cancels this job (also before it starts).
    pub cancel: CancelToken,
}

/// One sweep request: every grid point is run with the worker's executor.
pub struct SweepJob {
    /// Job number, unique within the editor session (shared with runs).
    pub id: u64,
    /// The sweep (checked by the caller; checked again before it runs).
    pub sweep: Sweep,
    /// Point `i` writes its files into `point_{i:03}` under this folder.
    pub out_dir: PathBuf,
    /// Cancels the sweep (also before it starts).
    pub cancel: CancelToken,
}

/// What the worker is asked to do.
enum Request {
    Run(Job),
    Sweep(SweepJob),
}

/// Output values of one node, by output port name.
pub type NodeValues = Vec<(String, Value)>;

/// What the worker reports.
pub enum WorkerMsg {
    /// A job left the queue and starts.
    Started(u64),
    /// An event of a running job.
    Event(u64, Event),
    /// A job ended: the outputs of every computed or cached node, or the error message.
    Finished {
        /// Job number.
        job: u64,
        /// Outputs by node id, or the error (with `cancelled` telling a cancel apart).
        result: Result<Vec<(String, NodeValues)>, (String, bool)>,
    },
    /// A grid point of a sweep finished.
    SweepPoint {
        /// Job number.
        job: u64,
        /// Number of points in the grid.
        total: usize,
        /// The point's measurements.
        point: PointResult,
    },
    /// A sweep ended: `Ok` after its last point, or the error (with `cancelled`).
    SweepFinished {
        /// Job number.
        job: u64,
        /// Outcome.
        result: Result<(), (String, bool)>,
    },
}

/// Handle to the worker thread.
pub struct Worker {
    jobs: Option<Sender<Request>>,
    msgs: Receiver<WorkerMsg>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread. `wake` is called after each message (the UI requests a repaint).
    pub fn spawn(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (job_tx, job_rx) = channel::<Request>();
        let (msg_tx, msg_rx) = channel::<WorkerMsg>();
        let thread = std::thread::Builder::new()
            .name("unilip-run".into())
            .spawn(move || worker_loop(job_rx, msg_tx, wake))
            .ok();
        Self {
            jobs: Some(job_tx),
            msgs: msg_rx,
            thread,
        }
    }

    /// Queues a job. Returns false when the worker thread is gone.
    pub fn submit(&self, job: Job) -> bool {
        self.send(Request::Run(job))
    }

    /// Queues a sweep. Returns false when the worker thread is gone.
    pub fn submit_sweep(&self, job: SweepJob) -> bool {
        self.send(Request::Sweep(job))
    }

    fn send(&self, request: Request) -> bool {
        self.thread.is_some()
            && self
                .jobs
                .as_ref()
                .is_some_and(|tx| tx.send(request).is_ok())
    }

    /// Next pending message, if any.
    pub fn try_recv(&self) -> Option<WorkerMsg> {
        self.msgs.try_recv().ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            // A running node finishes its step first; cancellation is the caller's job.
            let _ = t.join();
        }
    }
}

/// Sends worker messages to the UI and wakes it.
#[derive(Clone)]
struct Outbox {
    msgs: Sender<WorkerMsg>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Outbox {
    fn send(&self, m: WorkerMsg) {
        let _ = self.msgs.send(m);
        (self.wake)();
    }

    /// An event sink forwarding the events of job `id`.
    fn events(&self, id: u64) -> EventSink {
        let out = self.clone();
        Arc::new(move |e: &Event| out.send(WorkerMsg::Event(id, e.clone())))
    }
}

fn worker_loop(
    jobs: Receiver<Request>,
    msgs: Sender<WorkerMsg>,
    wake: Arc<dyn Fn() + Send + Sync>,
) {
    let mut exec = Executor::default();
    let out = Outbox { msgs, wake };
    while let Ok(request) = jobs.recv() {
        match request {
            Request::Run(job) => run_job(&mut exec, &out, job),
            Request::Sweep(job) => run_sweep(&mut exec, &out, job),
        }
    }
}

fn run_job(exec: &mut Executor, out: &Outbox, job: Job) {
    if job.cancel.is_cancelled() {
        out.send(WorkerMsg::Finished {
            job: job.id,
            result: Err(("cancelled before start".into(), true)),
        });
        return;
    }
    out.send(WorkerMsg::Started(job.id));
    let opts = RunOptions {
        targets: job.targets.clone(),
        events: Some(out.events(job.id)),
        cancel: job.cancel.clone(),
        env: RunEnv {
            out_dir: job.out_dir.clone(),
            provenance: Some(Arc::new(job.provenance.clone())),
        },
    };
    let result = match exec.run(&job.graph, &opts) {
        Ok(report) => Ok(report
            .outputs
            .iter()
            .filter_map(|(id, values)| {
                let schema = job.graph.nodes.get(id)?.def.schema();
                let named = schema
                    .outputs
                    .iter()
                    .zip(values.iter())
                    .map(|(p, v)| (p.name.clone(), v.clone()))
                    .collect();
                Some((id.clone(), named))
            })
            .collect()),
        Err(e) => Err((e.to_string(), e.cancelled)),
    };
    out.send(WorkerMsg::Finished {
        job: job.id,
        result,
    });
}

fn run_sweep(exec: &mut Executor, out: &Outbox, job: SweepJob) {
    if !job.cancel.is_cancelled() {
        out.send(WorkerMsg::Started(job.id));
    }
    let opts = SweepOptions {
        out_dir: job.out_dir,
        events: Some(out.events(job.id)),
        cancel: job.cancel,
    };
    let result = job
        .sweep
        .run(exec, Registry::global(), &opts, |_, total, point| {
            out.send(WorkerMsg::SweepPoint {
                job: job.id,
                total,
                point: point.clone(),
            })
        })
        .map(|_| ())
        .map_err(|e| {
            let cancelled = matches!(e, SweepError::Cancelled);
            (e.to_string(), cancelled)
        });
    out.send(WorkerMsg::SweepFinished {
        job: job.id,
        result,
    });
}
