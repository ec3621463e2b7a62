//! The live reference gateway (filled in by the next commit).
