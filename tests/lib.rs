//! End-to-end tests of gwgen live in `e2e/`; this library is empty.
