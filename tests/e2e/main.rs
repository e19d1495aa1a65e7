//! gwgen's end-to-end tests, in one binary so the link is paid once.
//!
//! They read third-party material vendored under `tests/corpus` (its `SOURCES.md` names each
//! file's origin and licence; set `GWGEN_CORPUS` to read another copy) and run the real `gwgen`
//! binary.

mod attacks;
mod auth;
mod aws;
mod cli;
mod compiled;
mod corpus;
mod differential;
mod docs;
mod domains;
mod edge;
mod fuzz;
mod gateway;
mod generate;
mod hostile;
mod http2;
mod keys;
mod lambda;
mod net;
mod snapshots;
mod suite;
mod support;
mod tls;
mod traffic;
mod transform;
mod upstreams;
mod validation;
mod websocket;
