//! [`Witness`] on etcd v3, through the JSON gateway every etcd 3.4 member serves beside its gRPC port
//! (`POST /v3/kv/range`, `POST /v3/kv/txn`; keys and values base64, 64-bit numbers as decimal strings).
//!
//! A compare-and-swap is one transaction: compare the key's `mod_revision` with the one read (or its `version`
//! with 0 when it must not exist yet), put the new record on success, range it on failure so the loser learns what
//! won. The gateway keeps the transaction's linearizable semantics: it is the same Txn call as over gRPC.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{Cas, Membership, Versioned, Witness, WitnessError};

pub struct EtcdWitness {
    agent: ureq::Agent,
    /// `http://host:port` of each member, tried in turn until one answers.
    endpoints: Vec<String>,
    /// The member that answered last, tried first next time.
    preferred: usize,
    key_b64: String,
}

impl EtcdWitness {
    /// `endpoints` are `host:port` (or full `http://` URLs) of the members' client ports; every request gives up
    /// on a member after `timeout`.
    pub fn new(endpoints: &[String], key: &str, timeout: Duration) -> Result<EtcdWitness, WitnessError> {
        if endpoints.is_empty() {
            return Err(WitnessError::Unreachable("no witness endpoints configured".into()));
        }
        let agent = ureq::AgentBuilder::new().timeout(timeout).timeout_connect(timeout).build();
        let endpoints = endpoints
            .iter()
            .map(|e| if e.starts_with("http://") { e.trim_end_matches('/').to_string() } else { format!("http://{e}") })
            .collect();
        Ok(EtcdWitness { agent, endpoints, preferred: 0, key_b64: B64.encode(key.as_bytes()) })
    }

    /// Posts `body` to `path` on the first member that answers.
    fn post(&mut self, path: &str, body: &Value) -> Result<Value, WitnessError> {
        let body = body.to_string();
        let mut last = String::new();
        for i in 0..self.endpoints.len() {
            let at = (self.preferred + i) % self.endpoints.len();
            let url = format!("{}{path}", self.endpoints[at]);
            match self.agent.post(&url).set("Content-Type", "application/json").send_string(&body) {
                Ok(resp) => {
                    self.preferred = at;
                    let text = resp.into_string().map_err(|e| WitnessError::Unreachable(format!("{url}: {e}")))?;
                    return serde_json::from_str(&text).map_err(|e| WitnessError::Malformed(format!("{url}: {e}")));
                }
                // A member that answers with an error (no leader, too many requests) is as good as unreachable
                // for this request: the next one may have a leader.
                Err(ureq::Error::Status(code, resp)) => {
                    last = format!("{url}: HTTP {code}: {}", resp.into_string().unwrap_or_default());
                }
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(WitnessError::Unreachable(last))
    }

    fn versioned(kv: &Value) -> Result<Versioned, WitnessError> {
        let value = kv.get("value").and_then(Value::as_str).unwrap_or("");
        let bytes = B64.decode(value).map_err(|e| WitnessError::Malformed(format!("value not base64: {e}")))?;
        Ok(Versioned { value: Membership::decode(&bytes)?, revision: number(kv, "mod_revision")? })
    }

    fn first_kv(range: &Value) -> Result<Option<Versioned>, WitnessError> {
        match range.get("kvs").and_then(Value::as_array).and_then(|kvs| kvs.first()) {
            Some(kv) => Ok(Some(Self::versioned(kv)?)),
            None => Ok(None),
        }
    }
}

/// A 64-bit field, which the gateway writes as a decimal string (proto3 JSON mapping).
fn number(v: &Value, field: &str) -> Result<u64, WitnessError> {
    match v.get(field) {
        Some(Value::String(s)) => s.parse().map_err(|_| WitnessError::Malformed(format!("{field} = {s:?}"))),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| WitnessError::Malformed(format!("{field} = {n}"))),
        _ => Err(WitnessError::Malformed(format!("no {field} in {v}"))),
    }
}

impl Witness for EtcdWitness {
    fn read(&mut self) -> Result<Option<Versioned>, WitnessError> {
        let reply = self.post("/v3/kv/range", &json!({ "key": self.key_b64 }))?;
        Self::first_kv(&reply)
    }

    fn swap(&mut self, expected: Option<u64>, next: &Membership) -> Result<Cas, WitnessError> {
        let compare = match expected {
            Some(rev) => json!({ "target": "MOD", "result": "EQUAL", "key": self.key_b64, "mod_revision": rev.to_string() }),
            None => json!({ "target": "VERSION", "result": "EQUAL", "key": self.key_b64, "version": "0" }),
        };
        let body = json!({
            "compare": [compare],
            "success": [{ "request_put": { "key": self.key_b64, "value": B64.encode(next.encode()) } }],
            "failure": [{ "request_range": { "key": self.key_b64 } }],
        });
        let reply = self.post("/v3/kv/txn", &body)?;
        // proto3 JSON leaves out `succeeded` when it is false.
        if reply.get("succeeded").and_then(Value::as_bool).unwrap_or(false) {
            let header = reply.get("header").ok_or_else(|| WitnessError::Malformed(format!("no header in {reply}")))?;
            return Ok(Cas::Won(number(header, "revision")?));
        }
        let range = reply
            .get("responses")
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .and_then(|r| r.get("response_range"))
            .ok_or_else(|| WitnessError::Malformed(format!("a failed txn without its range: {reply}")))?;
        Ok(Cas::Lost(Self::first_kv(range)?))
    }
}
