//! Policy files (`antibody sim train --out`): nothing may panic, and whatever parses must
//! write back to a file that parses to the same policy.
#![no_main]

use antibody_sim::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Policy::from_json(text) {
        let again = p.to_json().expect("a parsed policy serialises");
        assert_eq!(Policy::from_json(&again).expect("round trip"), p);
    }
});
