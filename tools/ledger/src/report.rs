//! The drop copy: trades per firm and day, balances and positions per account, obligations by state, as a table,
//! JSON (one array) or CSV.

use std::io::Write;

use crate::store::{Row, Store, Val};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// A named result set.
pub struct Listing {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Row>,
}

const TRADE_COLUMNS: &str = "match_number, seq, trade_date, settle_date, trade_time_ns, symbol, price, qty, \
                             buyer_account, buyer_firm, seller_account, seller_firm, state";

pub fn trades(s: &mut dyn Store, firm: Option<i64>, date: Option<&str>) -> anyhow::Result<Listing> {
    let mut sql = format!("SELECT {TRADE_COLUMNS} FROM trades WHERE 1 = 1");
    let mut params = Vec::new();
    if let Some(f) = firm {
        params.push(Val::Int(f));
        sql.push_str(&format!(" AND (buyer_firm = ${0} OR seller_firm = ${0})", params.len()));
    }
    if let Some(d) = date {
        params.push(Val::from(d));
        sql.push_str(&format!(" AND trade_date = ${}", params.len()));
    }
    sql.push_str(" ORDER BY match_number");
    Ok(Listing { columns: TRADE_COLUMNS.split(", ").map(str::trim).collect(), rows: s.query(&sql, &params)? })
}

pub fn balances(s: &mut dyn Store) -> anyhow::Result<Listing> {
    Ok(Listing {
        columns: vec!["account", "firm", "cash", "settled_cash"],
        rows: s.query("SELECT account, firm, cash, settled_cash FROM accounts ORDER BY account", &[])?,
    })
}

pub fn positions(s: &mut dyn Store) -> anyhow::Result<Listing> {
    Ok(Listing {
        columns: vec!["account", "symbol", "qty", "settled_qty"],
        rows: s.query("SELECT account, symbol, qty, settled_qty FROM positions ORDER BY account, symbol", &[])?,
    })
}

pub fn obligations(s: &mut dyn Store, state: Option<&str>) -> anyhow::Result<Listing> {
    let cols = "id, match_number, leg, from_account, to_account, asset, amount, settle_date, state";
    let (sql, params) = match state {
        Some(st) => (format!("SELECT {cols} FROM obligations WHERE state = $1 ORDER BY match_number, leg"), vec![Val::from(st)]),
        None => (format!("SELECT {cols} FROM obligations ORDER BY match_number, leg"), vec![]),
    };
    Ok(Listing { columns: cols.split(", ").collect(), rows: s.query(&sql, &params)? })
}

pub fn print(l: &Listing, format: Format, out: &mut impl Write) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = l
                .rows
                .iter()
                .map(|r| {
                    let obj = l.columns.iter().zip(r).map(|(c, v)| (c.to_string(), json(v))).collect();
                    serde_json::Value::Object(obj)
                })
                .collect();
            writeln!(out, "{}", serde_json::Value::Array(rows))?;
        }
        Format::Csv => {
            writeln!(out, "{}", l.columns.join(","))?;
            for r in &l.rows {
                let cells: Vec<String> = r.iter().map(|v| csv(&text(v))).collect();
                writeln!(out, "{}", cells.join(","))?;
            }
        }
        Format::Table => {
            let mut widths: Vec<usize> = l.columns.iter().map(|c| c.len()).collect();
            let cells: Vec<Vec<String>> = l.rows.iter().map(|r| r.iter().map(text).collect()).collect();
            for r in &cells {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.len());
                }
            }
            let line = |cells: Vec<&str>| -> String {
                cells.iter().zip(&widths).map(|(c, w)| format!("{c:>w$}")).collect::<Vec<_>>().join("  ")
            };
            writeln!(out, "{}", line(l.columns.clone()))?;
            for r in &cells {
                writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
            }
            writeln!(out, "({} rows)", l.rows.len())?;
        }
    }
    Ok(())
}

fn text(v: &Val) -> String {
    match v {
        Val::Int(i) => i.to_string(),
        Val::Text(t) => t.clone(),
        Val::Null => String::new(),
    }
}

fn json(v: &Val) -> serde_json::Value {
    match v {
        Val::Int(i) => (*i).into(),
        Val::Text(t) => t.clone().into(),
        Val::Null => serde_json::Value::Null,
    }
}

/// RFC 4180 §2: a field holding a comma, quote or line break is quoted, with quotes doubled.
fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
