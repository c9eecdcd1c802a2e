//! civicflow-e2e: tests that look across crates. The library is empty; the tests are in `it/`.
