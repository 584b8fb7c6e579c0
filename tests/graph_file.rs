//! RON documents: canonical, byte-identical round trips; the loader and validator never panic.

use std::path::Path;

use proptest::prelude::*;
use unilip_core::{validate, GraphDoc, Registry};

fn shipped_graphs() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("graphs");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("graphs/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        .collect();
    v.sort();
    v
}

#[test]
fn shipped_graphs_round_trip_byte_identical_and_validate() {
    unilip_nodes::link();
    let graphs = shipped_graphs();
    assert!(!graphs.is_empty(), "graphs/ has shipped graphs");
    for path in graphs {
        let text = std::fs::read_to_string(&path).expect("readable");
        let doc = GraphDoc::from_ron(&text, &path.display().to_string()).expect("parses");
        assert_eq!(
            doc.to_ron(),
            text,
            "{} is not in canonical form",
            path.display()
        );
        if let Err(errors) = validate(&doc, Registry::global()) {
            panic!("{} does not validate: {errors:#?}", path.display());
        }
    }
}

#[test]
fn save_load_save_is_byte_identical_and_sorted() {
    let text = r#"(format: 1, nodes: {
        "z": (type: "image.resize", version: 1, params: {"width": 32, "filter": "nearest"}),
        "a": (type: "image.load", version: 1, params: {"path": "p.png"}),
    }, edges: ["a.image -> z.image"],
    view: (nodes: {"z": (pos: (10.0, 2.5)), "a": (pos: (0.0, 0.0), collapsed: true)}))"#;
    let doc = GraphDoc::from_ron(text, "inline").expect("parses");
    let once = doc.to_ron();
    let twice = GraphDoc::from_ron(&once, "once")
        .expect("reparses")
        .to_ron();
    assert_eq!(once, twice);
    assert!(
        once.find("\"a\"").unwrap() < once.find("\"z\"").unwrap(),
        "nodes sorted: {once}"
    );
    assert!(
        once.contains("\"a.image -> z.image\""),
        "edges as node.port -> node.port: {once}"
    );
    let dir = std::env::temp_dir().join(format!("unilip-rt-{}", std::process::id()));
    let path = dir.join("g.ron");
    doc.save(&path).expect("saves");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), once);
    std::fs::remove_dir_all(dir).ok();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn loader_never_panics_on_arbitrary_text(text in ".{0,400}") {
        let _ = GraphDoc::from_ron(&text, "fuzz");
    }

    #[test]
    fn loader_and_validator_never_panic_on_mutated_graphs(
        cut in 0usize..2000, insert in "[\\[\\](){}:,\"a-z0-9.\\-]{0,12}"
    ) {
        unilip_nodes::link();
        for path in shipped_graphs() {
            let text = std::fs::read_to_string(&path).unwrap();
            let at = cut.min(text.len());
            let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            let mutated = format!("{}{}{}", &text[..at], insert, &text[at..]);
            if let Ok(doc) = GraphDoc::from_ron(&mutated, "fuzz") {
                let _ = validate(&doc, Registry::global());
            }
        }
    }
}

/// Version 2 of a node renamed param `size` to `width`; files saved with version 1 are migrated.
struct Renamed {
    schema: unilip_core::NodeSchema,
}

impl unilip_core::Node for Renamed {
    fn schema(&self) -> &unilip_core::NodeSchema {
        &self.schema
    }
    fn migrate(
        &self,
        from: u32,
        params: &mut std::collections::BTreeMap<String, unilip_core::ParamValue>,
    ) -> Result<(), String> {
        if from < 2 {
            if let Some(v) = params.remove("size") {
                params.insert("width".into(), v);
            }
        }
        Ok(())
    }
    fn execute(
        &self,
        _ctx: &mut unilip_core::ExecCtx<'_>,
    ) -> Result<Vec<unilip_core::Value>, unilip_core::NodeError> {
        Ok(vec![])
    }
}

#[test]
fn old_node_versions_are_migrated_then_validate() {
    let reg = Registry::from_nodes(vec![Box::new(Renamed {
        schema: unilip_core::NodeSchema {
            id: "test.renamed".into(),
            version: 2,
            category: "test".into(),
            description: String::new(),
            inputs: vec![],
            outputs: vec![],
            params: vec![unilip_core::ParamSpec::int("width", 1, 1, 100, "")],
            output_node: true,
        },
    }) as Box<dyn unilip_core::Node>]);
    let text =
        r#"(format: 1, nodes: {"n": (type: "test.renamed", version: 1, params: {"size": 7})})"#;
    let mut doc = GraphDoc::from_ron(text, "old").unwrap();
    assert!(
        validate(&doc, &reg).is_err(),
        "unmigrated `size` is an unknown param"
    );
    let notes = doc.migrate(&reg);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(doc.nodes["n"].version, 2);
    assert_eq!(
        doc.nodes["n"].params["width"],
        unilip_core::ParamValue::Int(7)
    );
    validate(&doc, &reg).expect("valid after migration");
}
