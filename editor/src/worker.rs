//! The run worker: one thread that owns the [`Executor`] (so its cache survives between runs)
//! and runs queued jobs one after the other, streaming core [`Event`]s back over a channel.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use unilip_core::{
    CancelToken, Event, EventSink, Executor, RunEnv, RunOptions, ValidatedGraph, Value,
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
}

/// Handle to the worker thread.
pub struct Worker {
    jobs: Option<Sender<Job>>,
    msgs: Receiver<WorkerMsg>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread. `wake` is called after each message (the UI requests a repaint).
    pub fn spawn(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (job_tx, job_rx) = channel::<Job>();
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
        self.thread.is_some() && self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok())
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

fn worker_loop(jobs: Receiver<Job>, msgs: Sender<WorkerMsg>, wake: Arc<dyn Fn() + Send + Sync>) {
    let mut exec = Executor::default();
    let send = {
        let wake = wake.clone();
        let msgs = msgs.clone();
        move |m: WorkerMsg| {
            let _ = msgs.send(m);
            wake();
        }
    };
    while let Ok(job) = jobs.recv() {
        if job.cancel.is_cancelled() {
            send(WorkerMsg::Finished {
                job: job.id,
                result: Err(("cancelled before start".into(), true)),
            });
            continue;
        }
        send(WorkerMsg::Started(job.id));
        let sink: EventSink = {
            let msgs = msgs.clone();
            let wake = wake.clone();
            let id = job.id;
            Arc::new(move |e: &Event| {
                let _ = msgs.send(WorkerMsg::Event(id, e.clone()));
                wake();
            })
        };
        let opts = RunOptions {
            targets: job.targets.clone(),
            events: Some(sink),
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
        send(WorkerMsg::Finished {
            job: job.id,
            result,
        });
    }
}
