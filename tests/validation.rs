//! One bad graph file per validation error kind: each must be refused with the right kind,
//! naming the right node and port/param, before any compute.

use std::path::Path;

use unilip_core::{validate, ErrorKind, GraphDoc, Registry};

fn errors_of(file: &str) -> Vec<unilip_core::ValidationError> {
    unilip_nodes::link();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bad_graphs")
        .join(file);
    let doc = GraphDoc::load(&path).unwrap_or_else(|e| panic!("{file} must parse: {e}"));
    match validate(&doc, Registry::global()) {
        Ok(_) => panic!("{file} validated but must not"),
        Err(errors) => errors,
    }
}

fn assert_error(file: &str, kind: ErrorKind, node: &str, at: Option<&str>) {
    let errors = errors_of(file);
    assert!(
        errors
            .iter()
            .any(|e| e.kind == kind && e.node == node && e.at.as_deref() == at),
        "{file}: expected {kind:?} at {node}.{at:?}, got {errors:#?}"
    );
}

#[test]
fn cycle_names_every_node_in_it() {
    let errors = errors_of("cycle.ron");
    let cycle = errors
        .iter()
        .find(|e| e.kind == ErrorKind::Cycle)
        .expect("cycle error");
    for n in ["a", "b", "c"] {
        assert!(
            cycle.message.contains(n),
            "cycle message names {n}: {}",
            cycle.message
        );
    }
}

#[test]
fn type_mismatch_names_both_types() {
    let errors = errors_of("type_mismatch.ron");
    let e = errors
        .iter()
        .find(|e| e.kind == ErrorKind::TypeMismatch)
        .expect("mismatch");
    assert_eq!((e.node.as_str(), e.at.as_deref()), ("show", Some("text")));
    assert!(
        e.message.contains("Float") && e.message.contains("Text"),
        "{}",
        e.message
    );
}

#[test]
fn required_input_missing() {
    assert_error(
        "required_input_missing.ron",
        ErrorKind::RequiredInputMissing,
        "resize",
        Some("image"),
    );
}

#[test]
fn unknown_node_type_is_reported_by_name() {
    let errors = errors_of("unknown_node_type.ron");
    assert_eq!(errors[0].kind, ErrorKind::UnknownNodeType);
    assert_eq!(errors[0].node, "sampler");
    assert!(errors[0].message.contains("comfy.KSampler"));
}

#[test]
fn unknown_param() {
    assert_error(
        "unknown_param.ron",
        ErrorKind::UnknownParam,
        "num",
        Some("vaule_typo"),
    );
}

#[test]
fn value_out_of_range() {
    assert_error(
        "value_out_of_range.ron",
        ErrorKind::ValueOutOfRange,
        "resize",
        Some("width"),
    );
}

#[test]
fn value_not_in_choices() {
    assert_error(
        "value_not_in_choices.ron",
        ErrorKind::ValueNotInChoices,
        "resize",
        Some("filter"),
    );
}

#[test]
fn two_wires_into_one_input() {
    assert_error(
        "duplicate_input.ron",
        ErrorKind::DuplicateInput,
        "resize",
        Some("image"),
    );
}

#[test]
fn edge_to_missing_node() {
    assert_error(
        "missing_node.ron",
        ErrorKind::MissingNode,
        "ghost",
        Some("image"),
    );
}

#[test]
fn edge_to_missing_port() {
    assert_error(
        "missing_port.ron",
        ErrorKind::MissingPort,
        "img",
        Some("picture"),
    );
}

#[test]
fn wrong_param_type() {
    assert_error(
        "wrong_param_type.ron",
        ErrorKind::WrongParamType,
        "resize",
        Some("width"),
    );
}

#[test]
fn all_errors_are_returned_at_once() {
    // Three independent problems in one file: every one is reported.
    let text = r#"(format: 1, nodes: {
        "x": (type: "nope", version: 1),
        "r": (type: "image.resize", version: 1, params: {"width": -3, "filter": "sinc"}),
    }, edges: [])"#;
    let doc = GraphDoc::from_ron(text, "inline").expect("parses");
    unilip_nodes::link();
    let errors = validate(&doc, Registry::global()).err().expect("invalid");
    let kinds: Vec<ErrorKind> = errors.iter().map(|e| e.kind).collect();
    for k in [
        ErrorKind::UnknownNodeType,
        ErrorKind::ValueOutOfRange,
        ErrorKind::ValueNotInChoices,
        ErrorKind::RequiredInputMissing,
    ] {
        assert!(kinds.contains(&k), "missing {k:?} in {errors:#?}");
    }
}
