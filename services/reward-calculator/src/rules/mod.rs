//! The reward rules: which partner event earns how much.
//!
//! Loaded from a TOML rules file (`REWARD_RULES_FILE`, or the shipped
//! `rules/default.toml` holding SPEC.md's table) and checked once at start:
//! a mistake stops the service with a line naming the key. Evaluation is
//! pure: [`Rules::evaluate`] turns an event into the rule that pays it and
//! the amount, or nothing.
//!
//! # Arithmetic
//! Everything is exact ([`Ratio`](crate::exact::Ratio)): decimal text from the payloads and the
//! rules file becomes a fraction, the fractions are multiplied, and the
//! amount in wei is rounded **down** once, at the very end. So a reward is
//! never more than the exact product, and is less by under one wei.
//!
//! `eval` holds the rules and their evaluation, `file` the TOML schema and
//! the checks that build the rules from it; `file` imports `eval`, and
//! neither imports this module.

mod eval;
mod file;
#[cfg(test)]
mod tests;

pub use self::eval::{Grant, MAX_REASON_LEN, Rule, RuleError, Rules};
pub use self::file::{DEFAULT_RULES, RulesError};
