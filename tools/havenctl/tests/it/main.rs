//! havenctl's integration tests: every command against the real broker and
//! a fresh database (and, for `reconcile`, a real anvil).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap here is a failed test

mod dead_letters;
mod helpers;
mod ops;
mod show;
