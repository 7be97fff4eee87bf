//! The appliance: `bourse run`.

pub mod outq;
