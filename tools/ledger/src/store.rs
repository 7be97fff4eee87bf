//! The seam between the ledger and its two databases. Both speak the same SQL (the schema keeps to `BIGINT`,
//! `TEXT`, primary keys and `ON CONFLICT DO NOTHING`, and parameters are written `$1, $2, …` in order of first
//! use, which SQLite binds by position too), so every statement is written once; a backend only prepares, binds,
//! runs and converts values.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};

/// A value bound to or read from a statement. The schema holds only 64-bit integers and text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Val {
    Int(i64),
    Text(String),
    Null,
}

impl Val {
    pub fn int(&self) -> anyhow::Result<i64> {
        match self {
            Val::Int(v) => Ok(*v),
            other => bail!("expected an integer, found {other:?}"),
        }
    }
    pub fn text(&self) -> anyhow::Result<&str> {
        match self {
            Val::Text(v) => Ok(v),
            other => bail!("expected text, found {other:?}"),
        }
    }
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(v.to_string())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(v)
    }
}

pub type Row = Vec<Val>;

pub trait Store {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Runs statements without parameters (schema, `BEGIN`, `COMMIT`).
    fn batch(&mut self, sql: &str) -> anyhow::Result<()>;
    /// Runs one statement; returns the rows it changed.
    fn exec(&mut self, sql: &str, params: &[Val]) -> anyhow::Result<u64>;
    fn query(&mut self, sql: &str, params: &[Val]) -> anyhow::Result<Vec<Row>>;
    /// True when the connection is gone (the server restarted): the caller reconnects and resumes.
    fn is_broken(&self) -> bool;
    /// Rows a multi-row INSERT should carry at most: many where each statement is a network round trip, and on
    /// an embedded database too, where each statement still costs a cache lookup, a bind and a VDBE run.
    fn rows_per_insert(&self) -> usize;
    /// Appends `vals` to `table` as rows of `columns.len()` values. A key that is already there fails the call
    /// (and so the transaction), as an INSERT would. By default multi-row INSERTs; PostgreSQL copies large appends.
    fn append(&mut self, table: &str, columns: &[&str], vals: &[Val]) -> anyhow::Result<()> {
        insert_rows(self, table, columns, vals)
    }
}

/// Rows per INSERT at most; a remainder goes in power-of-two chunks, so each table has at most a handful of
/// distinct statements for the prepared-statement caches (parameters per statement stay far below either
/// database's limit: 128 × 13).
const ROWS_PER_INSERT: usize = 128;

/// [`Store::append`] as multi-row INSERTs of at most [`Store::rows_per_insert`] rows.
fn insert_rows<S: Store + ?Sized>(s: &mut S, table: &str, columns: &[&str], vals: &[Val]) -> anyhow::Result<()> {
    let width = columns.len();
    anyhow::ensure!(width > 0 && vals.len().is_multiple_of(width), "{table}: {} values are not rows of {width}", vals.len());
    let most = s.rows_per_insert().clamp(1, ROWS_PER_INSERT);
    // Each statement's text is built once per call, not once per chunk: formatting it for every row took about a
    // tenth of ingest's CPU on SQLite when a chunk was one row (perf, bench ledger --inputs 50000).
    let mut texts: Vec<(usize, String)> = Vec::new();
    let mut rows = vals;
    while !rows.is_empty() {
        let left = rows.len() / width;
        let n = if left >= most { most } else { 1 << left.ilog2() };
        let (chunk, rest) = rows.split_at(n * width);
        let at = match texts.iter().position(|(k, _)| *k == n) {
            Some(i) => i,
            None => {
                texts.push((n, insert_sql(table, columns, n)));
                texts.len() - 1
            }
        };
        s.exec(&texts[at].1, chunk)?;
        rows = rest;
    }
    Ok(())
}

/// `INSERT INTO table (columns) VALUES ($1, …), …` for `rows` rows.
fn insert_sql(table: &str, columns: &[&str], rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES", columns.join(", "));
    let mut k = 0;
    for r in 0..rows {
        sql.push_str(if r == 0 { " (" } else { ", (" });
        for c in 0..columns.len() {
            k += 1;
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${k}"));
        }
        sql.push(')');
    }
    sql
}

/// Runs `f` in one transaction: committed when it returns `Ok`, rolled back otherwise.
pub fn transaction<T>(s: &mut dyn Store, f: impl FnOnce(&mut dyn Store) -> anyhow::Result<T>) -> anyhow::Result<T> {
    s.batch("BEGIN")?;
    match f(s) {
        Ok(v) => {
            s.batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            // A broken connection has rolled back already; the original error is the one to report.
            let _ = s.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// One integer from a query returning one row (`COUNT`, `SUM` cast to `BIGINT`), 0 when it returns none or NULL.
pub fn query_int(s: &mut dyn Store, sql: &str, params: &[Val]) -> anyhow::Result<i64> {
    let rows = s.query(sql, params)?;
    match rows.first().and_then(|r| r.first()) {
        None | Some(Val::Null) => Ok(0),
        Some(v) => v.int(),
    }
}

/// Opens a database named by `url`: `postgres://…` or `postgresql://…` for PostgreSQL, else a SQLite file path
/// (optionally `sqlite://path`).
pub fn open(url: &str) -> anyhow::Result<Box<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(Postgres::connect(url)?))
    } else {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        Ok(Box::new(Sqlite::open(path)?))
    }
}

pub struct Sqlite {
    conn: rusqlite::Connection,
}

impl Sqlite {
    pub fn open(path: &str) -> anyhow::Result<Sqlite> {
        let conn = rusqlite::Connection::open(path).with_context(|| format!("opening SQLite database {path}"))?;
        // WAL journaling with full sync: a committed batch survives a crash of the process and of the host, and
        // readers (`bourse ledger trades`) do not block the ingest.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Sqlite { conn })
    }
}

/// Bound by reference: the text is not copied for SQLite to copy it again.
impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Val::Int(i) => ValueRef::Integer(*i),
            Val::Text(t) => ValueRef::Text(t.as_bytes()),
            Val::Null => ValueRef::Null,
        }))
    }
}

impl Store for Sqlite {
    fn backend(&self) -> &'static str {
        "sqlite"
    }
    fn batch(&mut self, sql: &str) -> anyhow::Result<()> {
        self.conn.execute_batch(sql).with_context(|| format!("sqlite: {}", first_line(sql)))
    }
    fn exec(&mut self, sql: &str, params: &[Val]) -> anyhow::Result<u64> {
        let mut st = self.conn.prepare_cached(sql).with_context(|| format!("sqlite: preparing {sql}"))?;
        let n = st
            .execute(rusqlite::params_from_iter(params))
            .with_context(|| format!("sqlite: {sql}"))?;
        Ok(n as u64)
    }
    fn query(&mut self, sql: &str, params: &[Val]) -> anyhow::Result<Vec<Row>> {
        let mut st = self.conn.prepare_cached(sql).with_context(|| format!("sqlite: preparing {sql}"))?;
        let cols = st.column_count();
        let mut rows = st.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(cols);
            for i in 0..cols {
                row.push(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Integer(v) => Val::Int(v),
                    rusqlite::types::ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                    rusqlite::types::ValueRef::Null => Val::Null,
                    other => bail!("sqlite: unexpected column type {:?} in {sql}", other.data_type()),
                });
            }
            out.push(row);
        }
        Ok(out)
    }
    fn is_broken(&self) -> bool {
        false
    }
    /// Measured on bench ledger --workload dense (100,000 trades): 1 row a statement 22,400 trades/s, 16 rows
    /// 27,500, 64 rows 31,700.
    fn rows_per_insert(&self) -> usize {
        64
    }
}

pub struct Postgres {
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

impl Postgres {
    pub fn connect(url: &str) -> anyhow::Result<Postgres> {
        let client = postgres::Client::connect(url, postgres::NoTls).context("connecting to PostgreSQL")?;
        Ok(Postgres { client, statements: HashMap::new() })
    }

    fn statement(&mut self, sql: &str) -> anyhow::Result<postgres::Statement> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(sql).with_context(|| format!("postgres: preparing {sql}"))?;
        self.statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

/// Bound by reference, as on SQLite: no copy of the text, no box per parameter.
impl postgres::types::ToSql for Val {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Int(i) => i.to_sql(ty, out),
            Val::Text(t) => t.as_str().to_sql(ty, out),
            Val::Null => Ok(postgres::types::IsNull::Yes),
        }
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        <i64 as postgres::types::ToSql>::accepts(ty) || <&str as postgres::types::ToSql>::accepts(ty)
    }

    postgres::types::to_sql_checked!();
}

fn pg_refs(params: &[Val]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn postgres::types::ToSql + Sync)).collect()
}

/// Rows from which an append goes as one binary COPY rather than INSERTs: below it the COPY's own round trips
/// (start, data, finish) cost more than the statements they replace.
const COPY_ROWS_MIN: usize = 32;

impl Store for Postgres {
    fn backend(&self) -> &'static str {
        "postgres"
    }
    fn batch(&mut self, sql: &str) -> anyhow::Result<()> {
        self.client.batch_execute(sql).with_context(|| format!("postgres: {}", first_line(sql)))
    }
    fn exec(&mut self, sql: &str, params: &[Val]) -> anyhow::Result<u64> {
        let st = self.statement(sql)?;
        self.client.execute(&st, &pg_refs(params)).with_context(|| format!("postgres: {sql}"))
    }
    fn query(&mut self, sql: &str, params: &[Val]) -> anyhow::Result<Vec<Row>> {
        use postgres::types::Type;
        let st = self.statement(sql)?;
        let rows = self.client.query(&st, &pg_refs(params)).with_context(|| format!("postgres: {sql}"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut row = Vec::with_capacity(r.len());
            for (i, c) in r.columns().iter().enumerate() {
                let t = c.type_();
                row.push(if *t == Type::INT8 {
                    r.get::<_, Option<i64>>(i).map_or(Val::Null, Val::Int)
                } else if *t == Type::INT4 {
                    r.get::<_, Option<i32>>(i).map_or(Val::Null, |v| Val::Int(v.into()))
                } else if *t == Type::TEXT || *t == Type::VARCHAR {
                    r.get::<_, Option<String>>(i).map_or(Val::Null, Val::Text)
                } else {
                    bail!("postgres: unexpected column type {t} in {sql}")
                });
            }
            out.push(row);
        }
        Ok(out)
    }
    fn is_broken(&self) -> bool {
        self.client.is_closed()
    }
    fn rows_per_insert(&self) -> usize {
        128
    }
    /// A large append is one binary COPY: the server parses no statement and plans nothing per row. Column
    /// types come from the first row (the ledger's tables hold only BIGINT and TEXT, never NULL).
    fn append(&mut self, table: &str, columns: &[&str], vals: &[Val]) -> anyhow::Result<()> {
        use postgres::types::Type;
        let width = columns.len();
        if width == 0 || vals.len() < COPY_ROWS_MIN * width {
            return insert_rows(self, table, columns, vals);
        }
        anyhow::ensure!(vals.len().is_multiple_of(width), "{table}: {} values are not rows of {width}", vals.len());
        let mut types = Vec::with_capacity(width);
        for v in &vals[..width] {
            types.push(match v {
                Val::Int(_) => Type::INT8,
                Val::Text(_) => Type::TEXT,
                Val::Null => bail!("{table}: a NULL in the first row leaves its column's type unknown"),
            });
        }
        let copy = format!("COPY {table} ({}) FROM STDIN (FORMAT binary)", columns.join(", "));
        let sink = self.client.copy_in(copy.as_str()).with_context(|| format!("postgres: {copy}"))?;
        let mut writer = postgres::binary_copy::BinaryCopyInWriter::new(sink, &types);
        for row in vals.chunks(width) {
            writer.write(&pg_refs(row)).with_context(|| format!("postgres: {copy}: a row"))?;
        }
        writer.finish().with_context(|| format!("postgres: {copy}"))?;
        Ok(())
    }
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or("")
}
