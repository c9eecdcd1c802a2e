//! civicflow-dsl: the policy language.
//!
//! [`compile`] runs the whole pipeline: parse → resolve names and check types (lowering to the IR
//! as it goes) → structural checks → schedule feasibility → content hash. It does no I/O, reads
//! no clock and knows nothing of servers, storage or HTTP. Every stage after parsing accumulates
//! diagnostics, so one run reports all the errors of a file.

pub mod ast;
pub mod check;
pub mod diag;
pub mod eval;
pub mod fmt;
pub mod ir;
pub mod render;
pub mod schedule;
pub mod syntax;
pub mod template;
pub mod value;

pub use diag::{Code, Diagnostic, Renderer};

/// A policy that compiled without errors.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub policy: ir::Policy,
    /// SHA-256 of the IR's canonical encoding: the policy version's identity.
    pub hash: String,
    pub warnings: Vec<Diagnostic>,
}

/// The errors of a policy that did not compile. Never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// `None` when there is nothing to report.
    pub fn new(all: Vec<Diagnostic>) -> Option<Self> {
        (!all.is_empty()).then_some(Diagnostics(all))
    }
    pub fn as_slice(&self) -> &[Diagnostic] {
        &self.0
    }
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }
}

/// Compiles one policy source. Errors come sorted by position.
pub fn compile(source: &str) -> Result<Compiled, Diagnostics> {
    let file = match syntax::parse(source) {
        Ok(f) => f,
        Err(d) => return Err(Diagnostics(vec![d])),
    };
    let checked = check::check(&file);
    let mut all = checked.diagnostics;
    all.extend(schedule::check(&checked.policy, &checked.spans));
    all.sort_by_key(|d| (d.span.start, d.code));
    let (errors, warnings): (Vec<_>, Vec<_>) = all.into_iter().partition(Diagnostic::is_error);
    if let Some(errors) = Diagnostics::new(errors) {
        return Err(errors);
    }
    let hash = checked.policy.hash();
    Ok(Compiled { policy: checked.policy, hash, warnings })
}
