//! SQL text assembled at run time (optional filters, unions) with its bind values kept in step:
//! every value gets the next `$n`, and a placeholder may be used more than once.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// A bind value.
#[derive(Debug, Clone)]
pub enum Bind {
    /// `int8`.
    Int(i64),
    /// `timestamptz`.
    Time(DateTime<Utc>),
    /// `text`.
    Text(String),
}

/// SQL text with positional parameters.
#[derive(Debug, Default)]
pub struct DynSql {
    text: String,
    binds: Vec<Bind>,
}

impl DynSql {
    /// Registers `value` and returns its placeholder (`$n`) to write wherever it is needed.
    pub fn param(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// Appends text.
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends the placeholder of a new bind value.
    pub fn bind(&mut self, value: Bind) -> &mut Self {
        let p = self.param(value);
        self.push(&p)
    }

    /// Runs the query.
    pub async fn load<T>(self, conn: &mut AsyncPgConnection) -> diesel::QueryResult<Vec<T>>
    where
        T: QueryableByName<Pg> + Send + 'static,
    {
        let mut q = diesel::sql_query(self.text).into_boxed();
        for b in self.binds {
            q = match b {
                Bind::Int(v) => q.bind::<BigInt, _>(v),
                Bind::Time(v) => q.bind::<Timestamptz, _>(v),
                Bind::Text(v) => q.bind::<Text, _>(v),
            };
        }
        q.load(conn).await
    }
}
