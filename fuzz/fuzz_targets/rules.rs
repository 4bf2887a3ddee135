//! Rule files as untrusted text: compiling any input must return rules or errors, never panic.
#![no_main]

use antibody_rules::{RuleSet, RuleSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let _ = RuleSet::compile(&[RuleSource {
        name: "fuzz.yml".into(),
        text,
    }]);
});
