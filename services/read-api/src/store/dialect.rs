//! One statement text for both backends: written for PostgreSQL, rewritten
//! once at start for SQLite (`cargo xtask up`), so no query is written twice.

use sea_orm::{DbBackend, Statement, Value};

/// A statement written with PostgreSQL's `$n` placeholders, rewritten for
/// SQLite's positional `?` (the values are then repeated in placeholder order).
#[derive(Debug, Clone)]
pub(super) struct Sql {
    backend: DbBackend,
    text: String,
    /// For SQLite, the 0-based value index of each `?`, in order.
    order: Option<Vec<usize>>,
}

impl Sql {
    pub(super) fn new(backend: DbBackend, postgres: &str) -> Self {
        let agg = match backend {
            DbBackend::Postgres => "string_agg",
            _ => "group_concat",
        };
        let text = postgres.replace("{agg}", agg);
        if backend == DbBackend::Postgres {
            return Self {
                backend,
                text,
                order: None,
            };
        }
        let mut out = String::with_capacity(text.len());
        let mut order = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                    n = n * 10 + d as usize;
                    chars.next();
                }
                out.push('?');
                order.push(n.saturating_sub(1));
            } else {
                out.push(c);
            }
        }
        Self {
            backend,
            text: out,
            order: Some(order),
        }
    }

    /// The rewritten text, for a caller that binds its own values (the
    /// balance batching workers).
    pub(super) fn text(&self) -> &str {
        &self.text
    }

    pub(super) fn bind(&self, values: &[Value]) -> Statement {
        let values: Vec<Value> = match &self.order {
            None => values.to_vec(),
            Some(order) => order
                .iter()
                .filter_map(|i| values.get(*i).cloned())
                .collect(),
        };
        Statement::from_sql_and_values(self.backend, self.text.clone(), values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_become_positional_for_sqlite() {
        let sql = Sql::new(
            DbBackend::Sqlite,
            "a = $1 AND b = $2 OR c = $1 LIMIT $10 -- $x",
        );
        assert_eq!(sql.text, "a = ? AND b = ? OR c = ? LIMIT ? -- $x");
        assert_eq!(sql.order, Some(vec![0, 1, 0, 9]));
        let pg = Sql::new(DbBackend::Postgres, "SELECT {agg}(x, ',') WHERE a = $1");
        assert_eq!(pg.text, "SELECT string_agg(x, ',') WHERE a = $1");
        assert_eq!(pg.order, None);
        let lite = Sql::new(DbBackend::Sqlite, "SELECT {agg}(x, ',')");
        assert_eq!(lite.text, "SELECT group_concat(x, ',')");
    }
}
