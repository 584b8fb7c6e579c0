//! `unilip-editor [GRAPH.ron]`: the visual node editor as its own binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    unilip_nodes::link();
    if let Err(e) = unilip_nodes::backend::select(unilip_nodes::backend::DeviceKind::native()) {
        eprintln!("unilip-editor: {e}");
        return ExitCode::FAILURE;
    }
    let path = std::env::args_os().nth(1).map(std::path::PathBuf::from);
    match unilip_editor::run_editor(path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unilip-editor: {e}");
            ExitCode::FAILURE
        }
    }
}
