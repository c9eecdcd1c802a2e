//! Any text: the parser returns Ok or Err and never panics or overflows; when it parses, the
//! canonical format parses back to the same tree, keeps every comment and is a fixed point.
#![no_main]

use civicflow_dsl::{fmt, syntax};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let Ok(file) = syntax::parse(src) else { return };
    let text = fmt::format(&file);
    let again = match syntax::parse(&text) {
        Ok(f) => f,
        Err(d) => panic!("the formatted text does not parse: {} at {:?}\n{text}", d.message, d.span),
    };
    assert_eq!(again.policy, file.policy, "formatting changed the meaning\n{text}");
    let texts =
        |f: &civicflow_dsl::ast::File| f.comments.iter().map(|c| c.text.trim_end().to_string()).collect::<Vec<_>>();
    assert_eq!(texts(&again), texts(&file), "comments lost or reordered\n{text}");
    assert_eq!(fmt::format(&again), text, "formatting is not idempotent");
});
