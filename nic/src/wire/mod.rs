//! Wire formats, one module each.
