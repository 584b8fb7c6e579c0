//! The sweep window: pick params of the graph's nodes (one per axis, or several linked so they
//! change together) and the values to try (a comma list, checked with the param's
//! `ParamSpec::parse` as it is typed), pick number outputs to record as metrics, run the grid on the worker (cancellable, one progress step per point), and read
//! the results as a table and a bar chart per metric; export them as CSV. The sweep itself is
//! [`unilip_core::Sweep`], the same code as `unilip sweep`.

use std::path::Path;

use egui::{Color32, RichText, Ui};
use unilip_core::sweep::is_metric_type;
use unilip_core::{atomic_write, Axis, GraphDoc, PortRef, Registry, Sweep, SweepTable};

use crate::chart::{bar_chart, short_number};
use crate::document::Document;
use crate::run::{JobStatus, RunState, SweepRun};

/// One grid axis as edited: a node, one of its params, params linked to it (set at the same
/// grid point, like `--grid "a.x,b.y=1:2,3:4"`), and the values typed so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AxisDraft {
    /// Node id.
    pub node: String,
    /// Param name.
    pub param: String,
    /// Further `(node, param)` pairs that take their part of each value (`a:b`) or the whole.
    pub linked: Vec<(String, String)>,
    /// Values, comma separated (linked parts separated by `:`).
    pub values: String,
}

impl AxisDraft {
    /// An axis over `node.param` with the values of the comma list `values`.
    pub fn new(node: &str, param: &str, values: &str) -> Self {
        Self {
            node: node.into(),
            param: param.into(),
            linked: Vec::new(),
            values: values.into(),
        }
    }

    /// The same axis also setting `node.param`.
    pub fn link(mut self, node: &str, param: &str) -> Self {
        self.linked.push((node.into(), param.into()));
        self
    }

    /// The core axis: the comma list split, each value trimmed.
    pub fn axis(&self) -> Axis {
        Axis {
            node: self.node.clone(),
            param: self.param.clone(),
            linked: self.linked.clone(),
            values: self
                .values
                .split(',')
                .map(|v| v.trim().to_string())
                .collect(),
        }
    }
}

/// State of the sweep window.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPanel {
    /// Whether the window is shown.
    pub open: bool,
    /// Grid axes.
    pub axes: Vec<AxisDraft>,
    /// Outputs recorded at each point, in column order.
    pub metrics: Vec<PortRef>,
    /// Where "Export CSV" writes.
    pub csv_path: String,
    /// Outcome of the last action (start, export), and whether it is a problem.
    pub message: Option<(String, bool)>,
}

impl Default for SweepPanel {
    fn default() -> Self {
        Self {
            open: false,
            axes: Vec::new(),
            metrics: Vec::new(),
            csv_path: "sweep/results.csv".into(),
            message: None,
        }
    }
}

impl SweepPanel {
    /// The sweep over the current graph, or the first problem with the axes or metrics.
    pub fn sweep(&self, doc: &GraphDoc) -> Result<Sweep, String> {
        if self.axes.is_empty() {
            return Err("add a param to sweep".into());
        }
        let sweep = Sweep {
            base: doc.clone(),
            axes: self.axes.iter().map(AxisDraft::axis).collect(),
            metrics: self.metrics.clone(),
        };
        sweep.check(Registry::global()).map_err(|e| e.to_string())?;
        Ok(sweep)
    }

    /// Checks the sweep and queues it on the run worker.
    pub fn start(&mut self, doc: &Document, run: &mut RunState) -> Result<u64, String> {
        let r = self
            .sweep(doc.doc())
            .and_then(|sweep| run.submit_sweep(sweep));
        // Success shows in the sweep's status line.
        self.message = r.as_ref().err().map(|e| (e.clone(), true));
        r
    }

    /// Writes the latest sweep's table as CSV to `path`, atomically.
    pub fn export_csv(&mut self, run: &RunState, path: &Path) -> Result<(), String> {
        let r = match &run.sweep {
            Some(s) if !s.table.rows.is_empty() => atomic_write(path, s.table.to_csv().as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display())),
            _ => Err("no sweep results to export".into()),
        };
        self.message = Some(match &r {
            Ok(()) => (format!("wrote {}", path.display()), false),
            Err(e) => (e.clone(), true),
        });
        r
    }

    /// Shows the window (when open). Returns true when the user asks to choose the CSV file
    /// in the file picker.
    pub fn show(&mut self, ctx: &egui::Context, doc: &Document, run: &mut RunState) -> bool {
        let mut open = self.open;
        let mut browse = false;
        egui::Window::new("Sweep")
            .open(&mut open)
            .default_width(520.0)
            .default_height(560.0)
            .resizable(true)
            .show(ctx, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| browse = self.contents(ui, doc, run));
            });
        self.open = open;
        browse
    }

    /// The window's contents; returns whether the CSV picker was asked for.
    fn contents(&mut self, ui: &mut Ui, doc: &Document, run: &mut RunState) -> bool {
        ui.strong("Params to vary");
        let axes_ok = self.axes_ui(ui, doc.doc());
        ui.separator();
        ui.strong("Metrics");
        self.metrics_ui(ui, doc.doc());
        ui.separator();
        let sweep = self.sweep(doc.doc());
        let ok = axes_ok && sweep.is_ok();
        let busy = run.sweep.as_ref().is_some_and(SweepRun::busy);
        ui.horizontal(|ui| {
            let points: usize = if self.axes.is_empty() {
                0
            } else {
                self.axes.iter().map(|a| a.axis().values.len()).product()
            };
            if ui
                .add_enabled(ok && !busy, egui::Button::new("▶ Run sweep"))
                .on_hover_text("Run every combination of the values")
                .clicked()
            {
                let _ = self.start(doc, run);
            }
            if ui
                .add_enabled(busy, egui::Button::new("■ Cancel sweep"))
                .clicked()
            {
                run.cancel_sweep();
            }
            ui.label(format!("{points} point(s)"));
        });
        // Axis problems are shown under their rows already.
        if self.axes.is_empty() {
            ui.weak("Add a param to vary.");
        } else if let (Err(e), true) = (&sweep, axes_ok) {
            ui.label(RichText::new(e).color(Color32::LIGHT_RED).small());
        }
        if let Some((text, error)) = &self.message {
            let color = if *error {
                Color32::LIGHT_RED
            } else {
                Color32::GRAY
            };
            ui.label(RichText::new(text).color(color).small());
        }
        let Some(s) = &run.sweep else {
            return false;
        };
        ui.separator();
        status_ui(ui, s);
        if s.table.rows.is_empty() {
            return false;
        }
        let mut browse = false;
        ui.horizontal(|ui| {
            ui.label("CSV:");
            ui.add(egui::TextEdit::singleline(&mut self.csv_path).desired_width(220.0));
            browse = ui
                .small_button("🗁")
                .on_hover_text("Choose where to export")
                .clicked();
            if ui.button("Export CSV").clicked() {
                let path = self.csv_path.trim().to_string();
                let _ = self.export_csv(run, Path::new(&path));
            }
        });
        table_ui(ui, &s.table);
        browse
    }

    /// The axis rows; returns whether every value parses.
    fn axes_ui(&mut self, ui: &mut Ui, doc: &GraphDoc) -> bool {
        let nodes: Vec<(&String, &'static unilip_core::NodeSchema)> = doc
            .nodes
            .iter()
            .filter_map(|(id, n)| {
                let schema = Registry::global().get(&n.type_id)?.schema();
                (!schema.params.is_empty()).then_some((id, schema))
            })
            .collect();
        if nodes.is_empty() {
            ui.weak("The graph has no node with params.");
            return false;
        }
        let mut ok = true;
        let mut remove = None;
        for (i, draft) in self.axes.iter_mut().enumerate() {
            ui.horizontal(|ui| {
                let schema = target_ui(
                    ui,
                    &nodes,
                    ("sweep", i, 0),
                    &mut draft.node,
                    &mut draft.param,
                );
                let spec = schema.and_then(|s| s.param(&draft.param));
                let hint = match spec {
                    _ if !draft.linked.is_empty() => "a:b, c:d (or one value for all)".into(),
                    Some(p) if !p.choices.is_empty() => p.choices.join(","),
                    _ => "v1, v2, …".into(),
                };
                let label = ui.label("=");
                ui.add(
                    egui::TextEdit::singleline(&mut draft.values)
                        .id(egui::Id::new(("sweep values", i)))
                        .hint_text(hint)
                        .desired_width(180.0),
                )
                .labelled_by(label.id);
                if ui
                    .small_button("🔗")
                    .on_hover_text("Link another param: it takes its part of each value (a:b)")
                    .clicked()
                {
                    let (id, schema) = nodes[0];
                    draft
                        .linked
                        .push((id.clone(), schema.params[0].name.clone()));
                }
                if ui.small_button("🗑").on_hover_text("Remove").clicked() {
                    remove = Some(i);
                }
            });
            let mut unlink = None;
            for (j, (node, param)) in draft.linked.iter_mut().enumerate() {
                ui.horizontal(|ui| {
                    ui.add_space(16.0);
                    ui.label("and");
                    target_ui(ui, &nodes, ("sweep", i, j + 1), node, param);
                    if ui.small_button("✖").on_hover_text("Unlink").clicked() {
                        unlink = Some(j);
                    }
                });
            }
            if let Some(j) = unlink {
                draft.linked.remove(j);
            }
            if draft.values.trim().is_empty() {
                ok = false;
                ui.weak("Type the values to try, separated by commas.");
            } else if let Err(e) = draft.axis().check(doc, Registry::global()) {
                ok = false;
                ui.label(
                    RichText::new(e.to_string())
                        .color(Color32::LIGHT_RED)
                        .small(),
                );
            }
        }
        if let Some(i) = remove {
            self.axes.remove(i);
        }
        if ui.button("+ Add param").clicked() {
            let (id, schema) = nodes[0];
            self.axes
                .push(AxisDraft::new(id, &schema.params[0].name, ""));
        }
        ok
    }

    /// A checkbox per number output of the graph's nodes.
    fn metrics_ui(&mut self, ui: &mut Ui, doc: &GraphDoc) {
        self.metrics.retain(|m| doc.nodes.contains_key(&m.node));
        let mut any = false;
        for (id, n) in &doc.nodes {
            let Some(def) = Registry::global().get(&n.type_id) else {
                continue;
            };
            for out in def
                .schema()
                .outputs
                .iter()
                .filter(|o| is_metric_type(&o.ty))
            {
                any = true;
                let port = PortRef::new(id, &out.name);
                let mut on = self.metrics.contains(&port);
                if ui
                    .checkbox(&mut on, port.to_string())
                    .on_hover_text(&out.doc)
                    .changed()
                {
                    if on {
                        self.metrics.push(port);
                    } else {
                        self.metrics.retain(|m| *m != port);
                    }
                }
            }
        }
        if !any {
            ui.weak("No number outputs: the sweep runs every output node.");
        }
    }
}

/// Status and progress of a sweep.
fn status_ui(ui: &mut Ui, s: &SweepRun) {
    let done = s.table.rows.len();
    match &s.status {
        JobStatus::Queued => {
            ui.label("queued");
        }
        JobStatus::Running => {
            ui.add(
                egui::ProgressBar::new(done as f32 / s.total.max(1) as f32).text(format!(
                    "point {}/{}",
                    (done + 1).min(s.total),
                    s.total
                )),
            );
        }
        JobStatus::Done(d) => {
            ui.colored_label(
                Color32::LIGHT_GREEN,
                format!("done: {done} point(s) in {d:.2?}"),
            );
        }
        JobStatus::Failed(m) => {
            ui.colored_label(Color32::LIGHT_RED, format!("failed: {m}"));
        }
        JobStatus::Cancelled => {
            ui.colored_label(Color32::GRAY, format!("cancelled after {done} point(s)"));
        }
    }
}

/// The results as a table (one row per point) and a bar chart per metric.
fn table_ui(ui: &mut Ui, t: &SweepTable) {
    egui::ScrollArea::horizontal()
        .id_salt("sweep table")
        .show(ui, |ui| {
            egui::Grid::new("sweep results")
                .striped(true)
                .show(ui, |ui| {
                    for h in t.axes.iter().chain(&t.metrics) {
                        ui.strong(h);
                    }
                    ui.strong("executed");
                    ui.strong("seconds");
                    ui.end_row();
                    for r in &t.rows {
                        for v in &r.values {
                            ui.label(v);
                        }
                        for m in &r.metrics {
                            ui.label(short_number(*m)).on_hover_text(m.to_string());
                        }
                        ui.label(r.executed.len().to_string())
                            .on_hover_text(r.executed.join(", "));
                        ui.label(format!("{:.3}", r.elapsed.as_secs_f64()));
                        ui.end_row();
                    }
                });
        });
    for (k, name) in t.metrics.iter().enumerate() {
        ui.add_space(6.0);
        ui.strong(name);
        let bars: Vec<(String, f64)> = t
            .rows
            .iter()
            .map(|r| r.values.join(", "))
            .zip(t.metric_column(k))
            .collect();
        egui::ScrollArea::horizontal()
            .id_salt(("sweep chart", k))
            .show(ui, |ui| bar_chart(ui, &bars));
    }
}

/// A node picker and a param picker for one sweep target; returns the node's schema.
fn target_ui(
    ui: &mut Ui,
    nodes: &[(&String, &'static unilip_core::NodeSchema)],
    salt: (&str, usize, usize),
    node: &mut String,
    param: &mut String,
) -> Option<&'static unilip_core::NodeSchema> {
    egui::ComboBox::from_id_salt(("sweep node", salt))
        .selected_text(node.as_str())
        .show_ui(ui, |ui| {
            for (id, schema) in nodes {
                if ui.selectable_label(node == *id, id.as_str()).clicked() {
                    *node = (*id).clone();
                    *param = schema.params[0].name.clone();
                }
            }
        });
    let schema = nodes.iter().find(|(id, _)| *id == node).map(|n| n.1);
    egui::ComboBox::from_id_salt(("sweep param", salt))
        .selected_text(param.as_str())
        .show_ui(ui, |ui| {
            for p in schema.iter().flat_map(|s| &s.params) {
                ui.selectable_value(param, p.name.clone(), &p.name)
                    .on_hover_text(&p.doc);
            }
        });
    schema
}
