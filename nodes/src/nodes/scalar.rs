//! Constants, scalar arithmetic and text display.

use unilip_core::{ExecCtx, Node, NodeError, NodeSchema, ParamSpec, PortSpec, PortType, Value};

use crate::register_node;

/// `scalar.float`: a float constant.
pub struct FloatConst {
    schema: NodeSchema,
}

impl FloatConst {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "scalar.float".into(),
                version: 1,
                category: "scalar".into(),
                description: "A float constant.".into(),
                inputs: vec![],
                outputs: vec![PortSpec::new("value", PortType::Float, "The value")],
                params: vec![ParamSpec::float("value", 0.0, -1e12, 1e12, "Value")],
                output_node: false,
            },
        }
    }
}

impl Node for FloatConst {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        Ok(vec![Value::Float(ctx.float("value")?)])
    }
}

/// `scalar.math`: `a op b` on floats.
pub struct FloatMath {
    schema: NodeSchema,
}

impl FloatMath {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "scalar.math".into(),
                version: 1,
                category: "scalar".into(),
                description:
                    "Float arithmetic `a op b`; `b` defaults to the param when unconnected.".into(),
                inputs: vec![
                    PortSpec::new("a", PortType::Float, "Left operand"),
                    PortSpec::optional("b", PortType::Float, "Right operand (else param `b`)"),
                ],
                outputs: vec![PortSpec::new("value", PortType::Float, "Result")],
                params: vec![
                    ParamSpec::choice(
                        "op",
                        "add",
                        &["add", "subtract", "multiply", "divide", "min", "max", "pow"],
                        "Operation",
                    ),
                    ParamSpec::float("b", 0.0, -1e12, 1e12, "Right operand when `b` is not wired"),
                ],
                output_node: false,
            },
        }
    }
}

impl Node for FloatMath {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let a = ctx.input("a")?.as_float().map_err(super::failed)?;
        let b = match ctx.opt_input("b") {
            Some(v) => v.as_float().map_err(super::failed)?,
            None => ctx.float("b")?,
        };
        let v = match ctx.str("op")? {
            "add" => a + b,
            "subtract" => a - b,
            "multiply" => a * b,
            "divide" if b == 0.0 => return Err(NodeError::msg("division by zero")),
            "divide" => a / b,
            "min" => a.min(b),
            "max" => a.max(b),
            _ => a.powf(b),
        };
        Ok(vec![Value::Float(v)])
    }
}

/// `text.show`: prints text (or any value's description) and passes it on.
pub struct ShowText {
    schema: NodeSchema,
}

impl ShowText {
    /// The node.
    pub fn new() -> Self {
        Self {
            schema: NodeSchema {
                id: "text.show".into(),
                version: 1,
                category: "text".into(),
                description:
                    "Shows a text (an answer, a caption, file paths) in the CLI output and on \
                              the node in the editor."
                        .into(),
                inputs: vec![PortSpec::new("text", PortType::Text, "Text to show")],
                outputs: vec![PortSpec::new("text", PortType::Text, "The same text")],
                params: vec![],
                output_node: true,
            },
        }
    }
}

impl Node for ShowText {
    fn schema(&self) -> &NodeSchema {
        &self.schema
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<Vec<Value>, NodeError> {
        let text = ctx
            .input("text")?
            .as_text()
            .map_err(super::failed)?
            .to_string();
        Ok(vec![Value::Text(text)])
    }
}

register_node!(FloatConst);
register_node!(FloatMath);
register_node!(ShowText);
