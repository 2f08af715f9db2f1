//! Dockerfile text → parser → instructions → variable expansion, as a build
//! reads an untrusted Dockerfile.
use crate::dockerfile::{self, parse_instructions};
use std::collections::HashMap;

/// The fuzz target: `data` is any input libFuzzer makes.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = dockerfile::parse(text) else {
        return;
    };
    let _ = dockerfile::dump(&file);
    let Ok(stages) = parse_instructions(&file) else {
        return;
    };
    let env: HashMap<String, String> = [("A".to_string(), "a b".to_string())].into();
    let lookup = |n: &str| env.get(n).cloned();
    let _ = stages.global_arg_values(&env, &HashMap::new());
    for stage in &stages.stages {
        let _ = stages.expand_base(stage, &env);
        for command in &stage.commands {
            let _ = command.expand(&lookup, stages.escape);
        }
    }
}
