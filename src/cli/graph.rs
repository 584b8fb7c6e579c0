//! `unilip nodes` and `unilip graph ...`.

use std::path::PathBuf;

use clap::Subcommand;
use unilip_core::{GraphDoc, Registry};

use super::run::load_graph;
use super::CliError;

/// Graph utilities.
#[derive(Subcommand)]
pub enum GraphCommand {
    /// Print the graph in Graphviz dot format.
    Dot {
        /// Graph file.
        graph: PathBuf,
    },
    /// Rewrite graph files in canonical form (sorted, stable formatting), in place.
    Fmt {
        /// Graph files.
        graphs: Vec<PathBuf>,
    },
    /// Extract the graph embedded in a PNG written by Save Image.
    FromPng {
        /// PNG file.
        image: PathBuf,
        /// Write the graph here (default: print it).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// `unilip nodes [--json]`.
pub fn list_nodes(json: bool) {
    let reg = Registry::global();
    if json {
        println!("{}", reg.schema_json());
        return;
    }
    for s in reg.schemas() {
        let ins: Vec<String> = s
            .inputs
            .iter()
            .map(|p| format!("{}: {}", p.name, p.ty))
            .collect();
        let outs: Vec<String> = s
            .outputs
            .iter()
            .map(|p| format!("{}: {}", p.name, p.ty))
            .collect();
        println!(
            "{:<28} v{}  [{}]  ({}) -> ({})",
            s.id,
            s.version,
            s.category,
            ins.join(", "),
            outs.join(", ")
        );
    }
}

fn dot(doc: &GraphDoc) -> String {
    let mut s = String::from("digraph unilip {\n  rankdir=LR;\n  node [shape=box];\n");
    for (id, n) in &doc.nodes {
        s.push_str(&format!("  \"{id}\" [label=\"{id}\\n{}\"];\n", n.type_id));
    }
    for e in &doc.edges {
        s.push_str(&format!(
            "  \"{}\" -> \"{}\" [label=\"{} → {}\"];\n",
            e.from.node, e.to.node, e.from.port, e.to.port
        ));
    }
    s.push_str("}\n");
    s
}

/// Dispatches `unilip graph ...`.
pub fn graph_cmd(cmd: GraphCommand) -> Result<(), CliError> {
    match cmd {
        GraphCommand::Dot { graph } => {
            print!("{}", dot(&load_graph(&graph)?));
            Ok(())
        }
        GraphCommand::Fmt { graphs } => {
            for g in graphs {
                let doc = GraphDoc::load(&g).map_err(|e| CliError::Usage(e.to_string()))?;
                doc.save(&g).map_err(|e| CliError::Usage(e.to_string()))?;
            }
            Ok(())
        }
        GraphCommand::FromPng { image, output } => {
            let doc = load_graph(&image)?;
            match output {
                Some(path) => doc.save(&path).map_err(|e| CliError::Usage(e.to_string())),
                None => {
                    print!("{}", doc.to_ron());
                    Ok(())
                }
            }
        }
    }
}
