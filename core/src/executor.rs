//! The executor: pulls from the requested outputs, runs only what they need in topological order,
//! and serves unchanged nodes from a content-addressed, byte-budgeted LRU cache.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::document::PortRef;
use crate::exec_ctx::{CancelToken, Event, EventSink, ExecCtx, NodeError};
use crate::validate::{ResolvedNode, ValidatedGraph};
use crate::value::{matches_family, Value};

/// Content hash identifying a node's result: node type + version, canonical params, external
/// fingerprint and the keys of its upstream outputs. Node ids are not part of it.
pub type CacheKey = [u8; 32];

struct Entry {
    values: Arc<Vec<Value>>,
    bytes: usize,
    last_used: u64,
}

/// Byte-budgeted LRU of node results.
pub struct Cache {
    entries: HashMap<CacheKey, Entry>,
    budget: usize,
    used: usize,
    tick: u64,
}

impl Cache {
    /// An empty cache holding at most `budget` bytes (the newest entry is always kept).
    pub fn new(budget: usize) -> Self {
        Self {
            entries: HashMap::new(),
            budget,
            used: 0,
            tick: 0,
        }
    }

    fn get(&mut self, key: &CacheKey) -> Option<Arc<Vec<Value>>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|e| {
            e.last_used = tick;
            e.values.clone()
        })
    }

    fn contains(&self, key: &CacheKey) -> bool {
        self.entries.contains_key(key)
    }

    fn insert(&mut self, key: CacheKey, values: Arc<Vec<Value>>) {
        self.tick += 1;
        let bytes: usize = values.iter().map(Value::byte_size).sum();
        if let Some(old) = self.entries.insert(
            key,
            Entry {
                values,
                bytes,
                last_used: self.tick,
            },
        ) {
            self.used -= old.bytes;
        }
        self.used += bytes;
        while self.used > self.budget && self.entries.len() > 1 {
            let oldest = self
                .entries
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k);
            let Some(k) = oldest else { break };
            let e = self.entries.remove(&k).expect("present");
            self.used -= e.bytes;
        }
    }

    /// Bytes currently held.
    pub fn used_bytes(&self) -> usize {
        self.used
    }

    /// Number of cached node results.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.used = 0;
    }
}

/// What to run and how to report it.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Nodes whose outputs are wanted; empty = every output node (or every node without consumers).
    pub targets: Vec<String>,
    /// Progress events.
    pub events: Option<EventSink>,
    /// Cancellation.
    pub cancel: CancelToken,
    /// Where output nodes write files, and the provenance they embed.
    pub env: RunEnv,
}

/// Run-wide settings visible to nodes.
#[derive(Clone, Debug, Default)]
pub struct RunEnv {
    /// Directory output nodes write into (default: current directory).
    pub out_dir: std::path::PathBuf,
    /// The graph as run (canonical RON, overrides applied), embedded by savers.
    pub provenance: Option<Arc<String>>,
}

/// A failed run, as data.
#[derive(Debug, Clone, thiserror::Error)]
#[error("node `{node}` ({type_id}): {message}")]
pub struct RunError {
    /// Node id.
    pub node: String,
    /// Node type id.
    pub type_id: String,
    /// What went wrong.
    pub message: String,
    /// Shapes/values of the node's inputs, for diagnosis.
    pub inputs: Vec<(String, String)>,
    /// True when the run was cancelled.
    pub cancelled: bool,
}

/// Result of a successful run.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Outputs of every node computed or fetched during the run.
    pub outputs: BTreeMap<String, Arc<Vec<Value>>>,
    /// Nodes executed, in order.
    pub executed: Vec<String>,
    /// Nodes served from the cache.
    pub cached: Vec<String>,
    /// Wall time per executed node.
    pub timings: Vec<(String, Duration)>,
    /// Wall time of the run.
    pub total: Duration,
}

impl RunReport {
    /// Output `port` of `node`, if the run produced it.
    pub fn output(&self, graph: &ValidatedGraph, node: &str, port: &str) -> Option<&Value> {
        let idx = graph.nodes.get(node)?.def.schema().output_index(port)?;
        self.outputs.get(node)?.get(idx)
    }
}

/// Runs validated graphs, keeping a result cache between runs.
pub struct Executor {
    /// The result cache.
    pub cache: Cache,
}

impl Default for Executor {
    fn default() -> Self {
        Self::new(4 << 30)
    }
}

impl Executor {
    /// An executor whose cache holds at most `cache_bytes`.
    pub fn new(cache_bytes: usize) -> Self {
        Self {
            cache: Cache::new(cache_bytes),
        }
    }

    /// Cache keys of every node, top-down. Fingerprint failures are run errors on that node.
    pub fn cache_keys(
        &self,
        graph: &ValidatedGraph,
        env: &RunEnv,
    ) -> Result<HashMap<String, CacheKey>, RunError> {
        let mut keys: HashMap<String, CacheKey> = HashMap::new();
        for id in &graph.order {
            let node = &graph.nodes[id];
            let schema = node.def.schema();
            let fingerprint = node.def.fingerprint(&node.params).map_err(|m| RunError {
                node: id.clone(),
                type_id: schema.id.clone(),
                message: format!("cannot fingerprint external input: {m}"),
                inputs: vec![],
                cancelled: false,
            })?;
            let mut h = blake3::Hasher::new();
            h.update(schema.id.as_bytes());
            h.update(&schema.version.to_le_bytes());
            h.update(fingerprint.as_bytes());
            for (name, value) in &node.params {
                h.update(name.as_bytes());
                h.update(value.canonical().as_bytes());
            }
            if schema.output_node {
                // Side effects depend on where they go.
                h.update(opts_env_marker(&env.out_dir).as_bytes());
            }
            for (port, (src, coercion)) in &node.inputs {
                h.update(port.as_bytes());
                h.update(&keys[&src.node]);
                h.update(src.port.as_bytes());
                h.update(format!("{coercion:?}").as_bytes());
            }
            keys.insert(id.clone(), *h.finalize().as_bytes());
        }
        Ok(keys)
    }

    fn default_targets(graph: &ValidatedGraph) -> Vec<String> {
        let sinks: Vec<String> = graph
            .nodes
            .values()
            .filter(|n| n.def.schema().output_node)
            .map(|n| n.id.clone())
            .collect();
        if !sinks.is_empty() {
            return sinks;
        }
        let consumed: BTreeSet<&str> = graph
            .nodes
            .values()
            .flat_map(|n| n.inputs.values().map(|(s, _)| s.node.as_str()))
            .collect();
        graph
            .nodes
            .keys()
            .filter(|id| !consumed.contains(id.as_str()))
            .cloned()
            .collect()
    }

    /// Runs `graph` for `opts.targets`.
    pub fn run(
        &mut self,
        graph: &ValidatedGraph,
        opts: &RunOptions,
    ) -> Result<RunReport, RunError> {
        let start = Instant::now();
        let emit = |e: Event| {
            if let Some(sink) = &opts.events {
                sink(&e);
            }
        };
        let targets = if opts.targets.is_empty() {
            Self::default_targets(graph)
        } else {
            opts.targets.clone()
        };
        for t in &targets {
            if !graph.nodes.contains_key(t) {
                return Err(RunError {
                    node: t.clone(),
                    type_id: String::new(),
                    message: "requested output node does not exist".into(),
                    inputs: vec![],
                    cancelled: false,
                });
            }
        }
        let keys = self.cache_keys(graph, &opts.env)?;

        // Pull: a node runs if it is needed and not cached; its inputs are then needed too.
        let mut to_run: BTreeSet<String> = BTreeSet::new();
        let mut from_cache: BTreeSet<String> = BTreeSet::new();
        let mut stack: Vec<String> = targets.clone();
        while let Some(id) = stack.pop() {
            if to_run.contains(&id) || from_cache.contains(&id) {
                continue;
            }
            if self.cache.contains(&keys[&id]) {
                from_cache.insert(id);
            } else {
                stack.extend(
                    graph.nodes[&id]
                        .inputs
                        .values()
                        .map(|(s, _)| s.node.clone()),
                );
                to_run.insert(id);
            }
        }
        let order: Vec<&String> = graph
            .order
            .iter()
            .filter(|id| to_run.contains(*id))
            .collect();
        emit(Event::RunStarted {
            to_execute: order.iter().map(|s| s.to_string()).collect(),
            cached: from_cache.iter().cloned().collect(),
        });

        let mut report = RunReport::default();
        for id in &from_cache {
            let values = self.cache.get(&keys[id]).expect("checked above");
            report.outputs.insert(id.clone(), values);
            report.cached.push(id.clone());
        }
        for id in order {
            let node = &graph.nodes[id];
            if opts.cancel.is_cancelled() {
                emit(Event::RunFinished {
                    elapsed: start.elapsed(),
                });
                return Err(cancelled(node));
            }
            emit(Event::NodeStarted { node: id.clone() });
            let t0 = Instant::now();
            let values = match self.execute_node(node, &report.outputs, graph, opts) {
                Ok(v) => v,
                Err(e) => {
                    emit(Event::NodeFailed {
                        node: id.clone(),
                        message: e.message.clone(),
                    });
                    emit(Event::RunFinished {
                        elapsed: start.elapsed(),
                    });
                    return Err(e);
                }
            };
            let elapsed = t0.elapsed();
            emit(Event::NodeFinished {
                node: id.clone(),
                elapsed,
            });
            let values = Arc::new(values);
            self.cache.insert(keys[id], values.clone());
            report.outputs.insert(id.clone(), values);
            report.executed.push(id.clone());
            report.timings.push((id.clone(), elapsed));
        }
        report.total = start.elapsed();
        emit(Event::RunFinished {
            elapsed: report.total,
        });
        Ok(report)
    }

    fn execute_node(
        &self,
        node: &ResolvedNode,
        done: &BTreeMap<String, Arc<Vec<Value>>>,
        graph: &ValidatedGraph,
        opts: &RunOptions,
    ) -> Result<Vec<Value>, RunError> {
        let schema = node.def.schema();
        let mut inputs = BTreeMap::new();
        for (port, (src, coercion)) in &node.inputs {
            let value = lookup(done, graph, src).clone();
            inputs.insert(
                port.clone(),
                match coercion {
                    Some(c) => value.coerce(*c),
                    None => value,
                },
            );
        }
        let summaries: Vec<(String, String)> = inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.describe()))
            .collect();
        let mut ctx = ExecCtx {
            node_id: &node.id,
            params: &node.params,
            inputs,
            events: opts.events.as_ref(),
            cancel: &opts.cancel,
            env: &opts.env,
        };
        let fail = |message: String, cancelled: bool| RunError {
            node: node.id.clone(),
            type_id: schema.id.clone(),
            message,
            inputs: summaries.clone(),
            cancelled,
        };
        let values = node.def.execute(&mut ctx).map_err(|e| match e {
            NodeError::Cancelled => fail("cancelled".into(), true),
            other => fail(other.to_string(), false),
        })?;
        if values.len() != schema.outputs.len() {
            return Err(fail(
                format!(
                    "returned {} values for {} outputs (node bug)",
                    values.len(),
                    schema.outputs.len()
                ),
                false,
            ));
        }
        for (v, (port, ty)) in values
            .iter()
            .zip(schema.outputs.iter().zip(&node.output_types))
        {
            if !matches_family(v, ty) {
                return Err(fail(
                    format!(
                        "output `{}` is {} but declared {ty} (node bug)",
                        port.name,
                        v.describe()
                    ),
                    false,
                ));
            }
        }
        Ok(values)
    }
}

fn lookup<'a>(
    done: &'a BTreeMap<String, Arc<Vec<Value>>>,
    graph: &ValidatedGraph,
    src: &PortRef,
) -> &'a Value {
    let idx = graph.nodes[&src.node]
        .def
        .schema()
        .output_index(&src.port)
        .expect("validated");
    &done[&src.node][idx]
}

fn opts_env_marker(out_dir: &std::path::Path) -> String {
    format!("out_dir={}", out_dir.display())
}

fn cancelled(node: &ResolvedNode) -> RunError {
    RunError {
        node: node.id.clone(),
        type_id: node.def.schema().id.clone(),
        message: "cancelled before start".into(),
        inputs: vec![],
        cancelled: true,
    }
}
