//! gwgen's end-to-end tests, in one binary so the link is paid once.
//!
//! They read third-party material from `../shared/corpus` beside the repository (set
//! `GWGEN_CORPUS` to put it elsewhere) and run the real `gwgen` binary.

mod auth;
mod cli;
mod compiled;
mod corpus;
mod differential;
mod docs;
mod fuzz;
mod gateway;
mod generate;
mod hostile;
mod net;
mod snapshots;
mod suite;
mod support;
mod traffic;
mod validation;
