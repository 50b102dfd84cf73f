//! Consumer group coordinator (being written).
