//! Any text given as a policy: the compiler answers with a policy or diagnostics, never panics
//! or overflows its stack; what compiles formats and compiles again to the same hash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    if let Ok(compiled) = civicflow_dsl::compile(source) {
        let formatted = civicflow_dsl::fmt::format_source(source).expect("a policy that compiles formats");
        let again = civicflow_dsl::compile(&formatted).expect("a formatted policy compiles");
        assert_eq!(compiled.hash, again.hash, "formatting changed the policy's meaning");
    }
});
