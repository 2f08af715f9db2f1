//! BuildKit's AST dump format (the `result` files of its parser tests):
//! one `(instruction ["flags"…] "arg"…)` line per instruction, strings quoted
//! as Go's `strconv.Quote` does.

use super::go_quote::go_quote;
use super::node::Node;
use super::parser::Dockerfile;

/// Dumps the whole file, one line per instruction, newline-terminated.
pub fn dump(file: &Dockerfile) -> String {
    let mut out = String::new();
    for node in &file.children {
        out.push('(');
        out.push_str(&dump_node(node));
        out.push_str(")\n");
    }
    out
}

/// Dumps one node the way BuildKit's `Node.Dump` does.
pub fn dump_node(node: &Node) -> String {
    let mut out = node.value.to_lowercase();
    if !node.flags.is_empty() {
        out.push_str(" [");
        let quoted: Vec<String> = node.flags.iter().map(|f| go_quote(f)).collect();
        out.push_str(&quoted.join(" "));
        out.push(']');
    }
    for child in &node.children {
        out.push('(');
        out.push_str(&dump_node(child));
        out.push_str(")\n");
    }
    for arg in &node.next {
        out.push(' ');
        if arg.children.is_empty() {
            out.push_str(&go_quote(&arg.value));
        } else {
            out.push_str(&dump_node(arg));
        }
    }
    out.trim().to_string()
}
