//! UI tests of the editor with egui_kittest. Palette clicks go through real kittest pointer
//! events on rendered widgets; canvas gestures (wiring pins) are driven through the app's
//! action API, the same functions the snarl viewer's callbacks call, followed by real frames
//! whose visible labels are queried.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use unilip_core::validate::ErrorKind;
use unilip_core::{ParamValue, PortRef};
use unilip_editor::run::NodeState;
use unilip_editor::viewer::Zoom;
use unilip_editor::{Action, Document, EditorApp};

/// An app on `path` whose recent-files list stays in memory (tests never touch the user's
/// config folder).
fn harness(path: Option<PathBuf>) -> Harness<'static, EditorApp> {
    harness_with_store(path, None)
}

fn harness_with_store(
    path: Option<PathBuf>,
    store: Option<PathBuf>,
) -> Harness<'static, EditorApp> {
    unilip_nodes::link();
    let app = EditorApp::with_recent_store(&egui::Context::default(), path, store);
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_ui_state(|ui, app: &mut EditorApp| app.ui(ui), app)
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("unilip-editor-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// The test photo in `shared/assets`, found beside the fixtures (`UNILIP_FIXTURES` moves both,
/// e.g. for a checkout that does not sit next to `shared/`).
fn coffee() -> String {
    let p = unilip_nodes::fixtures::root().join("../assets/images/coffee.png");
    p.display().to_string()
}

#[test]
fn palette_click_adds_node() {
    let mut h = harness(None);
    h.run_steps(2);
    h.get_by_label("image.resize").click();
    h.run_steps(3);
    let doc = h.state().doc.doc();
    assert_eq!(doc.nodes.len(), 1);
    assert_eq!(doc.nodes["resize"].type_id, "image.resize");
    assert_eq!(doc.nodes["resize"].params["width"], ParamValue::Int(448));
    // The node is drawn on the canvas with its id and type.
    assert!(h.query_by_label("resize").is_some());
    assert!(h.state().doc.is_dirty());
}

#[test]
fn connect_compatible_pins_and_replace() {
    let mut h = harness(None);
    let app = h.state_mut();
    let a = app.add_node("image.load").unwrap();
    let b = app.add_node("image.load").unwrap();
    let r = app.add_node("image.resize").unwrap();
    let missing = |app: &EditorApp| {
        app.doc
            .errors()
            .iter()
            .any(|e| e.kind == ErrorKind::RequiredInputMissing && e.node == r)
    };
    assert!(missing(app));
    app.apply(Action::Connect {
        from: PortRef::new(&a, "image"),
        to: PortRef::new(&r, "image"),
    });
    assert_eq!(app.doc.doc().edges.len(), 1);
    assert!(!missing(app));
    // One wire per input: connecting another source replaces the first.
    app.apply(Action::Connect {
        from: PortRef::new(&b, "image"),
        to: PortRef::new(&r, "image"),
    });
    let edges = &app.doc.doc().edges;
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0].from.node, b);
    h.run_steps(3);
    assert!(h.query_by_label("load_2").is_some());
}

#[test]
fn incompatible_connection_is_refused_with_reason() {
    let mut h = harness(None);
    let app = h.state_mut();
    let load = app.add_node("image.load").unwrap();
    let show = app.add_node("text.show").unwrap();
    let before = app.doc.doc().clone();
    let err = app
        .connect(PortRef::new(&load, "image"), PortRef::new(&show, "text"))
        .unwrap_err();
    assert!(err.contains("incompatible types"), "{err}");
    assert_eq!(
        *app.doc.doc(),
        before,
        "a refused connection changes nothing"
    );
    h.run_steps(2);
    // The reason is shown in the status bar.
    assert!(h.query_by_label_contains("incompatible types").is_some());
}

#[test]
fn change_param_and_undo_redo() {
    let mut h = harness(None);
    let app = h.state_mut();
    let r = app.add_node("image.resize").unwrap();
    app.apply(Action::SetParam {
        node: r.clone(),
        name: "width".into(),
        value: ParamValue::Int(300),
    });
    // Typing more into the same field merges into one undo step.
    app.set_param(&r, "width", ParamValue::Int(320));
    app.set_param(&r, "filter", ParamValue::Str("nearest".into()));
    let params = |app: &EditorApp| app.doc.doc().nodes.get(&r).map(|n| n.params.clone());
    assert_eq!(params(app).unwrap()["width"], ParamValue::Int(320));
    assert!(app.doc.undo());
    assert_eq!(
        params(app).unwrap()["filter"],
        ParamValue::Str("bicubic".into())
    );
    assert!(app.doc.undo());
    assert_eq!(params(app).unwrap()["width"], ParamValue::Int(448));
    assert!(app.doc.undo());
    assert!(params(app).is_none(), "undoing the add removes the node");
    assert!(!app.doc.undo());
    assert!(app.doc.redo() && app.doc.redo());
    assert_eq!(params(app).unwrap()["width"], ParamValue::Int(320));
    h.run_steps(2);
    // The canvas shows the redone node with its param widgets.
    assert!(h.query_by_label("resize").is_some());
    assert!(h.query_all_by_label("filter").next().is_some());
    assert!(h.query_all_by_label("width").next().is_some());
}

#[test]
fn run_small_graph_shows_output_image() {
    let out = temp_dir("run");
    let mut h = harness(None);
    let app = h.state_mut();
    app.run.out_dir = out.clone();
    let load = app.add_node("image.load").unwrap();
    let resize = app.add_node("image.resize").unwrap();
    let save = app.add_node("image.save").unwrap();
    app.set_param(&load, "path", ParamValue::Str(coffee()));
    app.set_param(&resize, "width", ParamValue::Int(64));
    app.set_param(&resize, "height", ParamValue::Int(48));
    app.connect(PortRef::new(&load, "image"), PortRef::new(&resize, "image"))
        .unwrap();
    app.connect(PortRef::new(&resize, "image"), PortRef::new(&save, "image"))
        .unwrap();
    assert!(app.doc.errors().is_empty(), "{:?}", app.doc.errors());
    app.run(None);
    let start = Instant::now();
    loop {
        h.step();
        if !h.state().run.busy() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "run did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    h.run_steps(2);
    let app = h.state();
    for id in [&load, &resize, &save] {
        assert!(
            matches!(app.run.states.get(id), Some(NodeState::Done(_))),
            "{id}: {:?}",
            app.run.states.get(id)
        );
    }
    let shown = &app.run.outputs[&resize][0];
    assert_eq!(shown.port, "image");
    let tex = shown
        .texture
        .as_ref()
        .expect("image output has a thumbnail");
    assert_eq!(tex.size(), [64, 48]);
    assert!(out.join("image.png").is_file());
    // Per-node badges are drawn.
    assert!(h.query_all_by_label_contains("done").count() >= 3);

    // A second run is served from the executor's cache (the worker keeps it).
    h.state_mut().run(None);
    let start = Instant::now();
    while h.state().run.busy() {
        h.step();
        assert!(start.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step();
    assert_eq!(h.state().run.states.get(&save), Some(&NodeState::Cached));
}

#[test]
fn save_and_reload_identical_document() {
    let dir = temp_dir("save");
    let path = dir.join("graph.ron");
    let mut h = harness(None);
    let app = h.state_mut();
    let load = app.add_node("image.load").unwrap();
    let resize = app.add_node("image.resize").unwrap();
    app.set_param(&load, "path", ParamValue::Str(coffee()));
    app.connect(PortRef::new(&load, "image"), PortRef::new(&resize, "image"))
        .unwrap();
    assert!(app.doc.is_dirty());
    assert!(app.save(Some(&path)));
    assert!(!app.doc.is_dirty());
    let saved = app.doc.doc().clone();
    let (reloaded, notes) = Document::open(&path).unwrap();
    assert!(notes.is_empty());
    assert_eq!(*reloaded.doc(), saved);
    assert_eq!(
        reloaded.doc().to_ron(),
        std::fs::read_to_string(&path).unwrap()
    );
    assert!(!reloaded.is_dirty());

    // Opening the file in the app shows its nodes.
    let mut h2 = harness(Some(path.clone()));
    h2.run_steps(3);
    assert_eq!(*h2.state().doc.doc(), saved);
    assert!(h2.query_by_label("resize").is_some());
}

#[test]
fn bad_file_is_reported_not_fatal() {
    let dir = temp_dir("bad");
    let path = dir.join("broken.ron");
    std::fs::write(&path, "(format: 1, nodes: {").unwrap();
    let mut h = harness(Some(path));
    h.run_steps(2);
    assert!(h.state().doc.doc().nodes.is_empty());
    assert!(h.query_by_label_contains("cannot open").is_some());
}

#[test]
fn unknown_node_types_are_kept_as_placeholders() {
    let dir = temp_dir("unknown");
    let path = dir.join("g.ron");
    std::fs::write(
        &path,
        r#"(format: 1, nodes: {
            "a": (type: "image.load", version: 1, params: {"path": "x.png"}),
            "m": (type: "plugin.mystery", version: 3, params: {"k": 7}),
        }, edges: ["a.image -> m.input"])"#,
    )
    .unwrap();
    let mut h = harness(Some(path.clone()));
    h.run_steps(3);
    assert!(h
        .query_by_label_contains("unknown type `plugin.mystery`")
        .is_some());
    let app = h.state_mut();
    assert_eq!(app.doc.ports("m").inputs[0].name, "input");
    let copy = dir.join("copy.ron");
    assert!(app.save(Some(&copy)));
    let back = Document::open(&copy).unwrap().0;
    assert_eq!(back.doc().nodes["m"].params["k"], ParamValue::Int(7));
    assert_eq!(back.doc().edges.len(), 1);
}

#[test]
fn duplicate_and_paste_use_fresh_ids() {
    let mut doc = Document::default();
    unilip_nodes::link();
    let a = doc.add_node("image.load", (0.0, 0.0)).unwrap();
    let r = doc.add_node("image.resize", (200.0, 0.0)).unwrap();
    doc.connect(PortRef::new(&a, "image"), PortRef::new(&r, "image"))
        .unwrap();
    let text = doc.copy(&[a.clone(), r.clone()]);
    let mut other = Document::default();
    let ids = other.paste(&text).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(other.doc().edges.len(), 1);
    let dup = doc.duplicate(&[a, r]);
    assert_eq!(dup.len(), 2);
    assert_eq!(doc.doc().nodes.len(), 4);
    assert_eq!(doc.doc().edges.len(), 2);
}

#[test]
fn group_rename_ungroup_round_trip_and_node_removal() {
    let dir = temp_dir("groups");
    let path = dir.join("groups.ron");
    let mut h = harness(None);
    let app = h.state_mut();
    let a = app.add_node("image.load").unwrap();
    let b = app.add_node("image.resize").unwrap();
    let c = app.add_node("text.show").unwrap();
    app.apply(Action::Group {
        nodes: vec![a.clone(), b.clone(), "missing".into()],
        title: "Input".into(),
    });
    let groups = |app: &EditorApp| app.doc.doc().view.groups.clone();
    let g = groups(app);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].title, "Input");
    assert_eq!(
        g[0].nodes,
        vec![a.clone(), b.clone()],
        "unknown ids are left out"
    );
    // Grouping nothing is refused with a message, not an empty group.
    app.apply(Action::Group {
        nodes: vec![],
        title: "Empty".into(),
    });
    assert_eq!(groups(app).len(), 1);
    assert!(app.notice.as_ref().is_some_and(|n| n.error));

    // Renaming, typed in several steps, is one undo step.
    app.apply(Action::RenameGroup {
        index: 0,
        title: "Load".into(),
    });
    app.apply(Action::RenameGroup {
        index: 0,
        title: "Loading".into(),
    });
    assert_eq!(groups(app)[0].title, "Loading");
    assert!(app.doc.undo());
    assert_eq!(groups(app)[0].title, "Input");
    assert!(app.doc.redo());

    // The group is listed in the side panel with its members (and framed on the canvas).
    h.run_steps(3);
    assert!(h.query_by_label(&format!("{a}, {b}")).is_some());
    assert!(h.query_by_label("Groups (1)").is_some());

    // Saved in the RON view section and read back unchanged.
    let app = h.state_mut();
    assert!(app.save(Some(&path)));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("Loading"), "{text}");
    let (reloaded, _) = Document::open(&path).unwrap();
    assert_eq!(reloaded.doc().view.groups, groups(app));

    // Deleting a node removes it from its group; the last member takes the group with it.
    app.apply(Action::Remove(vec![a.clone()]));
    assert_eq!(groups(app)[0].nodes, vec![b.clone()]);
    app.apply(Action::Remove(vec![b.clone()]));
    assert!(groups(app).is_empty());
    assert!(app.doc.undo());
    assert!(app.doc.undo());
    assert_eq!(groups(app)[0].nodes, vec![a.clone(), b.clone()]);

    // Ungrouping keeps the nodes, and is undoable.
    app.apply(Action::Ungroup(0));
    assert!(groups(app).is_empty());
    assert_eq!(app.doc.doc().nodes.len(), 3);
    assert!(app.doc.doc().nodes.contains_key(&c));
    assert!(app.doc.undo());
    assert_eq!(groups(app).len(), 1);
    h.run_steps(2);
}

#[test]
fn locked_seed_survives_randomise_all() {
    let mut h = harness(None);
    let app = h.state_mut();
    app.apply(Action::Add {
        type_id: "unilip.noise".into(),
        pos: (0.0, 0.0),
        wire: None,
    });
    app.apply(Action::Add {
        type_id: "unilip.noise".into(),
        pos: (0.0, 450.0),
        wire: None,
    });
    let seed = |app: &EditorApp, n: &str| app.doc.doc().nodes[n].params["seed"].clone();
    assert_eq!(seed(app, "noise"), ParamValue::Int(42));
    let before = app.doc.doc().clone();
    app.apply(Action::LockSeed {
        node: "noise".into(),
        name: "seed".into(),
        locked: true,
    });
    assert_eq!(*app.doc.doc(), before, "the lock is not in the document");
    app.randomise_seeds();
    assert_eq!(seed(app, "noise"), ParamValue::Int(42), "locked seed kept");
    assert_ne!(
        seed(app, "noise_2"),
        ParamValue::Int(42),
        "unlocked seed changed"
    );
    // One undo step for all seeds.
    assert!(app.doc.undo());
    assert_eq!(*app.doc.doc(), before);

    // The canvas shows one locked and one unlocked toggle; clicking the open lock locks it.
    h.run_steps(3);
    assert_eq!(h.query_all_by_label("🔒").count(), 1);
    // The snarl layer is transformed, so a pointer click at the widget's untransformed
    // rectangle would miss it; the accesskit click reaches the button itself.
    h.get_by_label("🔓").click_accesskit();
    h.run_steps(3);
    assert_eq!(h.query_all_by_label("🔒").count(), 2);
    let app = h.state_mut();
    assert!(app.seed_locks.contains(&("noise_2".into(), "seed".into())));
    app.randomise_seeds();
    assert_eq!(*app.doc.doc(), before, "every seed is locked");
    // Unlocking through the action API makes it randomisable again.
    app.set_seed_lock("noise", "seed", false);
    app.randomise_seeds();
    assert_ne!(seed(app, "noise"), ParamValue::Int(42));
    assert_eq!(seed(app, "noise_2"), ParamValue::Int(42));
}

#[test]
fn recent_files_persist_across_sessions() {
    let dir = temp_dir("recent");
    let store = dir.join("config").join("unilip").join("recent.txt");
    let (a, b) = (dir.join("a.ron"), dir.join("b.ron"));
    let mut h = harness_with_store(None, Some(store.clone()));
    let app = h.state_mut();
    app.add_node("image.load").unwrap();
    assert!(app.save(Some(&a)));
    assert!(app.save(Some(&b)));
    assert!(app.save(Some(&a)));
    assert_eq!(app.recent.list, vec![a.clone(), b.clone()]);
    assert_eq!(
        std::fs::read_to_string(&store).unwrap(),
        format!("{}\n{}\n", a.display(), b.display())
    );
    // A new session reads the list back; opening a file moves it to the front.
    let mut h2 = harness_with_store(Some(b.clone()), Some(store.clone()));
    h2.run_steps(2);
    assert_eq!(h2.state().recent.list, vec![b.clone(), a.clone()]);
    assert_eq!(h2.state().recent.store(), Some(store.as_path()));
    // Without a store the list lives in memory only.
    let mut h3 = harness(Some(a.clone()));
    h3.run_steps(1);
    assert_eq!(h3.state().recent.list, vec![a]);
    assert_eq!(h3.state().recent.store(), None);
}

/// Steps the harness until no run or sweep is queued or running.
fn wait_idle(h: &mut Harness<'static, EditorApp>) {
    let start = Instant::now();
    while h.state().run.busy() {
        h.step();
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "run did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    h.run_steps(2);
}

/// An editor running into `dir` on a graph `float.value → math.a`; returns it and the two ids.
fn float_into_math(dir: &Path) -> (Harness<'static, EditorApp>, String, String) {
    let mut h = harness(None);
    let app = h.state_mut();
    app.run.out_dir = dir.to_path_buf();
    let x = app.add_node("scalar.float").unwrap();
    let math = app.add_node("scalar.math").unwrap();
    app.connect(PortRef::new(&x, "value"), PortRef::new(&math, "a"))
        .unwrap();
    (h, x, math)
}

#[test]
fn sweep_panel_runs_a_grid_and_shows_table() {
    let dir = temp_dir("sweep");
    let (mut h, x, math) = float_into_math(&dir);
    h.run_steps(2);
    h.get_by_label("📊 Sweep").click();
    h.run_steps(2);
    h.get_by_label("+ Add param").click();
    h.run_steps(2);
    // The new row picks the first node's first param; its values are typed into the field.
    assert_eq!(
        h.state().sweep.axes,
        vec![unilip_editor::sweep::AxisDraft::new(&x, "value", "")]
    );
    h.get_by_label("=").focus();
    h.run_steps(1);
    h.get_by_label("=").type_text("1, 2");
    h.run_steps(2);
    assert_eq!(h.state().sweep.axes[0].values, "1, 2");
    // A value the param cannot take is reported under its row and blocks the run.
    h.state_mut()
        .sweep
        .axes
        .push(unilip_editor::sweep::AxisDraft::new(&math, "b", "10,x"));
    h.run_steps(2);
    assert!(h.query_by_label_contains("got `x`").is_some());
    h.state_mut().sweep.axes[1].values = "10,20".into();
    h.state_mut().sweep.metrics = vec![PortRef::new(&math, "value")];
    h.run_steps(2);
    assert!(h.query_by_label("4 point(s)").is_some());
    h.get_by_label("▶ Run sweep").click();
    h.run_steps(1);
    wait_idle(&mut h);

    let sweep = h.state().run.sweep.as_ref().expect("a sweep ran");
    assert!(
        matches!(sweep.status, unilip_editor::run::JobStatus::Done(_)),
        "{:?}",
        sweep.status
    );
    let rows: Vec<(Vec<String>, Vec<f64>)> = sweep
        .table
        .rows
        .iter()
        .map(|r| (r.values.clone(), r.metrics.clone()))
        .collect();
    let row = |a: &str, b: &str, m: f64| (vec![a.to_string(), b.to_string()], vec![m]);
    assert_eq!(
        rows,
        vec![
            row("1", "10", 11.0),
            row("1", "20", 21.0),
            row("2", "10", 12.0),
            row("2", "20", 22.0)
        ]
    );
    // The point that changes only `math.b` reuses the cached `float`.
    assert_eq!(sweep.table.rows[1].executed, vec![math.clone()]);
    // The table shows a header and one row per point.
    assert!(h.query_by_label("executed").is_some() && h.query_by_label("seconds").is_some());
    for v in ["11", "21", "12", "22"] {
        assert!(h.query_by_label(v).is_some(), "cell {v}");
    }
    assert!(h.query_by_label_contains("done: 4 point(s)").is_some());

    // Export writes the same CSV as `unilip sweep`.
    let csv = dir.join("results.csv");
    h.state_mut().sweep.csv_path = csv.display().to_string();
    h.run_steps(1);
    h.get_by_label("Export CSV").click();
    h.run_steps(2);
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "float.value,math.b,math.value,executed,seconds");
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[2].starts_with("1,20,21,1,"), "{text}");
}

#[test]
fn sweep_panel_links_two_params_into_one_axis() {
    let (mut h, x, math) = float_into_math(&temp_dir("sweep-linked"));
    let app = h.state_mut();
    app.sweep.open = true;
    app.sweep.axes = vec![unilip_editor::sweep::AxisDraft::new(&x, "value", "")];
    app.sweep.metrics = vec![PortRef::new(&math, "value")];
    h.run_steps(2);
    // The link button adds a second target to the same axis (first node, first param).
    h.get_by_label("🔗").click();
    h.run_steps(2);
    assert_eq!(
        h.state().sweep.axes,
        vec![unilip_editor::sweep::AxisDraft::new(&x, "value", "").link(&x, "value")]
    );
    h.state_mut().sweep.axes[0].linked[0] = (math.clone(), "b".into());
    // A value with the wrong number of parts is refused under the row.
    h.state_mut().sweep.axes[0].values = "1:10:5".into();
    h.run_steps(2);
    assert!(h
        .query_by_label_contains("2 `:`-separated values")
        .is_some());
    h.state_mut().sweep.axes[0].values = "1:10, 2:20".into();
    h.run_steps(2);
    // Linked params change together: two points, not four.
    assert!(h.query_by_label("2 point(s)").is_some());
    h.get_by_label("▶ Run sweep").click();
    h.run_steps(1);
    wait_idle(&mut h);
    let sweep = h.state().run.sweep.as_ref().expect("a sweep ran");
    let sums: Vec<Vec<f64>> = sweep.table.rows.iter().map(|r| r.metrics.clone()).collect();
    assert_eq!(sums, vec![vec![11.0], vec![22.0]]);
}

/// Steps the harness until a node labelled with `text` (a substring) shows up.
fn wait_for_label(h: &mut Harness<'static, EditorApp>, text: &str) {
    let start = Instant::now();
    while h.query_by_label_contains(text).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "`{text}` never appeared"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn file_picker_sets_path_params() {
    let dir = temp_dir("picker").canonicalize().unwrap();
    std::fs::write(dir.join("photo.png"), b"not really a png").unwrap();
    std::fs::create_dir(dir.join("ckpt")).unwrap();
    let mut h = harness(None);
    let app = h.state_mut();
    let load = app.add_node("image.load").unwrap();
    // The picker starts in the folder of the current value, even if that file does not exist.
    app.set_param(
        &load,
        "path",
        ParamValue::Str(dir.join("old.png").display().to_string()),
    );
    h.run_steps(3);
    // The button sits on the transformed snarl layer: click it through accesskit.
    h.get_by_label("🗁").click_accesskit();
    h.run_steps(2);
    assert!(h.state().picker.is_open());
    wait_for_label(&mut h, "photo.png");
    h.get_by_label_contains("photo.png").click();
    h.run_steps(2);
    h.get_by_label("🗀  Open").click();
    h.run_steps(3);
    let app = h.state();
    assert!(!app.picker.is_open());
    assert_eq!(
        app.doc.doc().nodes[&load].params["path"],
        ParamValue::Str(dir.join("photo.png").display().to_string())
    );
    // One undo step restores the typed value.
    let app = h.state_mut();
    assert!(app.doc.undo());
    assert_eq!(
        app.doc.doc().nodes[&load].params["path"],
        ParamValue::Str(dir.join("old.png").display().to_string())
    );

    // Folder params pick a folder; cancelling leaves the value alone.
    let data = app.add_node("data.folder").unwrap();
    let folder = dir.display().to_string();
    app.set_param(&data, "dir", ParamValue::Str(folder.clone()));
    app.browse(&data, "dir");
    h.run_steps(2);
    wait_for_label(&mut h, "ckpt");
    h.get_by_label("🚫 Cancel").click();
    h.run_steps(2);
    assert!(!h.state().picker.is_open());
    assert_eq!(
        h.state().doc.doc().nodes[&data].params["dir"],
        ParamValue::Str(folder)
    );
    h.state_mut().browse(&data, "dir");
    h.run_steps(2);
    wait_for_label(&mut h, "ckpt");
    h.get_by_label_contains("ckpt").click();
    h.run_steps(2);
    h.get_by_label("🗀  Open").click();
    h.run_steps(3);
    assert_eq!(
        h.state().doc.doc().nodes[&data].params["dir"],
        ParamValue::Str(dir.join("ckpt").display().to_string())
    );
}

#[test]
fn file_menu_open_uses_the_picker() {
    let dir = temp_dir("open").canonicalize().unwrap();
    let mut h = harness(None);
    let app = h.state_mut();
    app.add_node("image.resize").unwrap();
    assert!(app.save(Some(&dir.join("first.ron"))));
    // Saved again elsewhere, so only the dialog's entry names `first.ron`.
    assert!(app.save(Some(&dir.join("second.ron"))));
    app.new_graph();
    h.run_steps(2);
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Open…").click();
    h.run_steps(2);
    wait_for_label(&mut h, "first.ron");
    h.get_by_label_contains("first.ron").click();
    h.run_steps(2);
    h.get_by_label("🗀  Open").click();
    h.run_steps(3);
    let app = h.state();
    assert_eq!(app.doc.path(), Some(dir.join("first.ron").as_path()));
    assert!(app.doc.doc().nodes.contains_key("resize"));
}

#[test]
fn clicking_an_output_image_opens_the_viewer_at_full_size() {
    let out = temp_dir("viewer");
    let mut h = harness(None);
    let app = h.state_mut();
    app.run.out_dir = out;
    let load = app.add_node("image.load").unwrap();
    let save = app.add_node("image.save").unwrap();
    app.set_param(&load, "path", ParamValue::Str(coffee()));
    app.connect(PortRef::new(&load, "image"), PortRef::new(&save, "image"))
        .unwrap();
    app.run(None);
    wait_idle(&mut h);
    let thumb = h.state().run.outputs[&load][0]
        .texture
        .as_ref()
        .unwrap()
        .size();
    assert_eq!(thumb, [256, 170], "the node shows a thumbnail");
    // The thumbnail sits on the transformed snarl layer: click it through accesskit.
    h.get_by_label(&format!("{load}.image")).click_accesskit();
    h.run_steps(3);
    let app = h.state();
    assert_eq!(app.viewer.showing(), Some((load.as_str(), "image")));
    assert_eq!(
        app.viewer.texture_size(),
        Some([600, 400]),
        "full resolution"
    );
    assert_eq!(app.viewer.zoom, Zoom::Fit);
    assert!(h.query_by_label("600×400 px").is_some());
    h.get_by_label("1:1").click();
    h.run_steps(2);
    assert_eq!(h.state().viewer.zoom, Zoom::Actual);
    assert!(h.query_by_label("full-size image").is_some());
    // Closing the window forgets the image.
    h.get_by_label("Close window").click();
    h.run_steps(2);
    assert_eq!(h.state().viewer.showing(), None);
}
